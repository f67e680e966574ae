#!/usr/bin/env bash
# Stand-in base images for the Dockerfile's PYTHON_IMAGE and NODE_IMAGE, made from Debian packages
# only (no registry image can be pulled on the CI machines). Needs root, buildah and debootstrap.
#
#   deploy/image/bases.sh            # makes both when missing or out of date, prints their names
#
# Each base is debootstrap's minbase bookworm plus a few packages, laid out the way the official
# image is where the Dockerfile relies on it (deploy/image/README.md lists the differences).
# A base is remade only when its recipe changes; CI starts from nothing and makes both.
set -euo pipefail

export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON_BASE="${PYTHON_BASE:-localhost/instagender-standin-python:3.11-bookworm}"
NODE_BASE="${NODE_BASE:-localhost/instagender-standin-node:bookworm}"
# npm as the official node image bundles it (node 22.16.0 ships npm 10.9.2), from the npm registry.
NPM_VERSION=10.9.2
NPM_INTEGRITY=sha512-iriPEPIkoMYUy3F6f3wwSZAU93E0Eg6cHwIR6jzzOXWSy+SD/rOODEs74cVONHKSx2obXtuUoyidVEhISrisgQ==

log() { printf 'time=%s level=INFO logger=image-bases message=%s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# What a base is made from: its packages and the functions that make it. A base is remade only
# when this changes (it is the image's label), so local runs reuse them.
recipe_hash() {  # recipe_hash PACKAGES LAYOUT-FUNCTION
    { echo "$1"; declare -f minbase make_base trust_host_certificates "$2"; echo "$NPM_VERSION"; } \
        | sha256sum | cut -c1-16
}

current() {  # current IMAGE HASH: true when the image exists and was made from this recipe
    local label
    label="$(buildah inspect --type image --format '{{index .ImageAnnotations "org.instagender.bases-hash"}}' "$1" 2>/dev/null)" || return 1
    [ "$label" = "$2" ]
}

WORK="$(mktemp -d /var/tmp/instagender-bases.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# One minbase root, debootstrapped once and copied for each base that needs making.
minbase() {
    if [ ! -d "$WORK/minbase" ]; then
        log "debootstrap --variant=minbase bookworm"
        debootstrap --variant=minbase bookworm "$WORK/minbase" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; return 1; }
    fi
    cp -a "$WORK/minbase" "$1"
    # Debian's slim images (the official python and node images are built on them) install no
    # documentation, manual pages or translations: the same dpkg rule, and the same files removed.
    mkdir -p "$1/etc/dpkg/dpkg.cfg.d"
    printf 'path-exclude /usr/share/%s/*\n' doc man groff info lintian linda locale \
        >"$1/etc/dpkg/dpkg.cfg.d/docker"
    echo 'path-include /usr/share/doc/*/copyright' >>"$1/etc/dpkg/dpkg.cfg.d/docker"
}

# make_base NAME PACKAGES LAYOUT-FUNCTION : minbase + apt-get install, copied into an image.
# (apt-get inside the root resolves dependencies properly; debootstrap --include does not.)
make_base() {
    local name="$1" packages="$2" layout="$3" hash
    hash="$(recipe_hash "$packages" "$layout")"
    if current "$name" "$hash"; then
        log "reusing $name"
        return
    fi
    local root="$WORK/root" container mountpoint
    rm -rf "$root"
    minbase "$root"
    log "apt-get install $packages"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # shellcheck disable=SC2086 # the package list is meant to split
    chroot "$root" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages" \
        >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; return 1; }
    # What the official images also leave out: package lists and caches.
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    # resolv.conf comes from the host at run time, as in any container.
    : >"$root/etc/resolv.conf"
    trust_host_certificates "$root"
    "$layout" "$root"
    container="$(buildah from scratch)"
    mountpoint="$(buildah mount "$container")"
    cp -a "$root"/. "$mountpoint"/
    buildah umount "$container" >/dev/null
    if [ -n "$(ls "$root/usr/local/share/ca-certificates")" ]; then
        # pip uses its own CA list and Node.js its built-in one unless told otherwise.
        buildah config --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
            --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$container"
    fi
    buildah config --env LANG=C.UTF-8 \
        --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
        --annotation "org.instagender.bases-hash=$hash" "$container"
    case "$name" in
        *python*) buildah config --env PYTHON_VERSION="$(chroot "$root" python3 -c 'import platform; print(platform.python_version())')" --cmd python3 "$container" ;;
        *node*) buildah config --env NODE_VERSION="$(chroot "$root" node --version | tr -d v)" --cmd node "$container" ;;
    esac
    buildah commit --quiet --rm "$container" "$name" >/dev/null
    rm -rf "$root"
    log "made $name"
}

# Where this machine's network intercepts TLS (CI does: pip and npm see a proxy's certificate), the
# host trusts certificates Debian's bundle lacks. The bases trust them too, as local CAs, or no RUN
# step could reach PyPI or npm. A no-op where the host's bundle is Debian's.
trust_host_certificates() {
    local root="$1"
    python3 - /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt" \
        "$root/usr/local/share/ca-certificates" <<'PY'
import pathlib, re, sys

def certificates(path):
    text = pathlib.Path(path).read_text()
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)

base = set(certificates(sys.argv[2]))
extra = [pem for pem in certificates(sys.argv[1]) if pem not in base]
for number, pem in enumerate(extra):
    pathlib.Path(sys.argv[3], f"host-{number}.crt").write_text(pem + "\n")
print(f"{len(extra)} certificate(s) the host trusts beyond Debian's bundle", file=sys.stderr)
PY
    chroot "$root" update-ca-certificates >/dev/null 2>&1
}

# The official python image installs Python under /usr/local with `python`, `python3`, `pip` on the
# PATH and `python -m venv` working; Debian splits venv (and its ensurepip wheels) into python3-venv.
python_layout() {
    local root="$1"
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
    chroot "$root" python3 -m venv /tmp/venv-check && rm -rf "$root/tmp/venv-check"
}

# The official node image has `node` and `npm` on the PATH, npm in /usr/local/lib/node_modules.
# Debian's npm package pulls in some 400 node-* packages (minutes to install); npm's own tarball
# from the npm registry bundles its dependencies, and is the npm the official image carries.
node_layout() {
    local root="$1" tarball="$WORK/npm.tgz"
    curl -fsSL --retry 3 -o "$tarball" "https://registry.npmjs.org/npm/-/npm-$NPM_VERSION.tgz"
    [ "sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)" = "$NPM_INTEGRITY" ] \
        || { echo "npm-$NPM_VERSION.tgz does not match its integrity hash" >&2; return 1; }
    mkdir -p "$root/usr/local/lib/node_modules/npm"
    tar -xzf "$tarball" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    chroot "$root" node --version >/dev/null
    chroot "$root" /usr/local/bin/npm --version >/dev/null
}

make_base "$PYTHON_BASE" "python3 python3-venv ca-certificates netbase tzdata" python_layout
make_base "$NODE_BASE" "nodejs ca-certificates" node_layout
echo "PYTHON_IMAGE=$PYTHON_BASE"
echo "NODE_IMAGE=$NODE_BASE"
