"""Create or update the staff role groups (Curator, Model operator, Data protection).

Each group ends up holding exactly the permissions ``accounts.roles.ROLES`` lists, so running it
after an upgrade brings the roles up to date and running it twice changes nothing. Give a person a
role by adding them to the group in the admin (Users → Groups) and ticking "staff status".
"""

from django.core.management.base import BaseCommand

from accounts.roles import staff_roles_sync


class Command(BaseCommand):
    help = "Create or update the staff role groups with exactly the permissions each role needs."

    def handle(self, *args, **options):
        counts = staff_roles_sync()
        summary = ", ".join(f"{name} ({count} permissions)" for name, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Staff roles up to date: {summary}."))
