#!/bin/bash
# Installs terraform (or OpenTofu) of one pinned version, verified before anything is unpacked:
#   1. the publisher's public key is downloaded and imported into a throw-away keyring;
#   2. the release's SHA256SUMS must carry a valid signature whose primary key has the published
#      fingerprint below (gpg --verify; VALIDSIG's last field is the primary key's fingerprint, so
#      another key in the downloaded file, or a subkey of another key, is refused);
#   3. the zip's own line of SHA256SUMS, and only that line, is checked (sha256sum -c);
#   4. only then is the binary unzipped into DEST.
# deploy/Dockerfile runs it in a build stage; test/deploy/deploy.test.ts runs it against a local
# signed release (its own key) and checks that a tampered zip, SUMS file, signature or key stops it.
#
# Environment (the Dockerfile's build arguments):
#   TERRAFORM_DIST             terraform (default) | tofu
#   TERRAFORM_VERSION          the release, e.g. 1.11.4 (Parmanu needs terraform or OpenTofu >= 1.11)
#   HASHICORP_KEY_FINGERPRINT  HashiCorp's release signing key ("HashiCorp Security", key id
#                              72D7468F; https://www.hashicorp.com/security, HCSEC-2021-12, its
#                              validity extended in 2026, HCSEC-2026-03). Not the apt repository key.
#   OPENTOFU_KEY_FINGERPRINT   OpenTofu's signing key (https://get.opentofu.org/opentofu.asc;
#                              https://opentofu.org/docs/intro/install/standalone/)
#   TARGETARCH                 amd64 | arm64 (BuildKit sets it; default: dpkg's architecture)
#   DEST                       where the binary goes (default /usr/local/bin)
set -euo pipefail

dist=${TERRAFORM_DIST:-terraform}
version=${TERRAFORM_VERSION:?TERRAFORM_VERSION is required (e.g. 1.11.4)}
arch=${TARGETARCH:-$(dpkg --print-architecture)}
dest=${DEST:-/usr/local/bin}

[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "install-terraform: TERRAFORM_VERSION must be a release such as 1.11.4, not '$version'" >&2; exit 1; }
case "$arch" in amd64 | arm64) ;; *) echo "install-terraform: unsupported architecture '$arch'" >&2; exit 1 ;; esac

case "$dist" in
  terraform)
    base="https://releases.hashicorp.com/terraform/${version}"
    name="terraform_${version}"
    sig="${name}_SHA256SUMS.sig"
    key_url="https://www.hashicorp.com/.well-known/pgp-key.txt"
    fingerprint=${HASHICORP_KEY_FINGERPRINT:?HASHICORP_KEY_FINGERPRINT is required}
    ;;
  tofu)
    base="https://github.com/opentofu/opentofu/releases/download/v${version}"
    name="tofu_${version}"
    # .gpgsig is OpenTofu's GPG signature (its .sig is a cosign signature)
    sig="${name}_SHA256SUMS.gpgsig"
    key_url="https://get.opentofu.org/opentofu.asc"
    fingerprint=${OPENTOFU_KEY_FINGERPRINT:?OPENTOFU_KEY_FINGERPRINT is required}
    ;;
  *) echo "install-terraform: TERRAFORM_DIST must be terraform or tofu, not '$dist'" >&2; exit 1 ;;
esac
fingerprint=${fingerprint// /}
zip="${name}_linux_${arch}.zip"

work=$(mktemp -d)
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
cleanup() {
  gpgconf --kill all > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

fetch() { curl --proto '=https' --tlsv1.2 -fsSL --retry 3 -o "$2" "$1"; }
fetch "$key_url" key.asc
fetch "$base/${name}_SHA256SUMS" SHA256SUMS
fetch "$base/$sig" SHA256SUMS.sig
fetch "$base/$zip" "$zip"

gpg --batch --quiet --import key.asc
gpg --batch --status-file verify.status --verify SHA256SUMS.sig SHA256SUMS
signer=$(awk '$2 == "VALIDSIG" { print $NF }' verify.status)
[ "$signer" = "$fingerprint" ] || { echo "install-terraform: ${name}_SHA256SUMS is not signed by $fingerprint (signed by: ${signer:-nobody})" >&2; exit 1; }

awk -v f="$zip" '$2 == f' SHA256SUMS > zip.sha256
[ "$(wc -l < zip.sha256)" -eq 1 ] || { echo "install-terraform: ${name}_SHA256SUMS has no single line for $zip" >&2; exit 1; }
sha256sum --strict -c zip.sha256

unzip -q "$zip" "$dist" -d out
install -m 0755 "out/$dist" "$dest/$dist"
"$dest/$dist" version
