#!/usr/bin/env bash
# macOS: dist/segstudio.app (from `pyinstaller packaging/macos/segstudio.spec`) → signed .app → .dmg.
#   bash packaging/macos/make_dmg.sh VERSION VARIANT
# Signing: MACOS_SIGN_IDENTITY="Developer ID Application: …" signs with the hardened runtime (and, with
# MACOS_NOTARY_PROFILE set to a `xcrun notarytool store-credentials` profile, notarizes and staples); without it
# the app is ad-hoc signed, which Apple Silicon requires to run at all (Gatekeeper will still ask once).
set -euo pipefail
version=${1:?version}
variant=${2:-cpu}
cd "$(dirname "$0")/../.."
app=dist/segstudio.app
[ -d "$app" ] || { echo "make_dmg: $app missing: run pyinstaller packaging/macos/segstudio.spec first"; exit 1; }
entitlements=packaging/macos/entitlements.plist
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --deep --options runtime --timestamp --entitlements "$entitlements" \
           --sign "$MACOS_SIGN_IDENTITY" "$app"
else
  codesign --force --deep --sign - "$app"
fi
codesign --verify --deep --strict "$app"
# the self-test runs the signed bundle's own binary, so a signing problem fails the build, not the user
QT_QPA_PLATFORM=offscreen "$app/Contents/MacOS/segstudio" --selftest

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
cp build/package/generated/THIRD-PARTY-NOTICES.txt "$staging/"
dmg="dist/segstudio-${version}-macos-$(uname -m)-${variant}.dmg"
rm -f "$dmg"
hdiutil create -volname "segstudio ${version}" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$dmg"
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" "$dmg"
  if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$dmg" --keychain-profile "$MACOS_NOTARY_PROFILE" --wait
    xcrun stapler staple "$dmg"
  fi
fi
echo "make_dmg: wrote $dmg"
