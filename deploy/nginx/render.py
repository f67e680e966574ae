"""Render deploy/nginx/templates/default.conf.template the way the nginx image does.

The nginx image runs its templates through ``envsubst`` limited to variables whose names match
NGINX_ENVSUBST_FILTER (compose sets ``^NGINX_``). This does the same in Python, for the tests and
for a host without Docker, but stricter: a placeholder without a value is an error, not an empty
string that nginx would reject later with a less helpful message.

    python -m deploy.nginx.render > /etc/nginx/conf.d/instagender.conf   # values from the environment
"""

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "templates" / "default.conf.template"
# envsubst replaces both ${NAME} and $NAME; nginx's own variables are lower case.
PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}|\$(NGINX_[A-Z0-9_]+)")


def placeholders(text: str) -> set[str]:
    return {braced or bare for braced, bare in PLACEHOLDER.findall(text)}


def render(values: Mapping[str, str], template: Path = TEMPLATE) -> str:
    text = template.read_text(encoding="utf-8")
    missing = sorted(name for name in placeholders(text) if not values.get(name))
    if missing:
        raise KeyError(f"No value for {', '.join(missing)} in {template.name}.")
    return PLACEHOLDER.sub(lambda match: values[match.group(1) or match.group(2)], text)


if __name__ == "__main__":
    try:
        sys.stdout.write(render(os.environ))
    except KeyError as error:
        sys.exit(error.args[0])
