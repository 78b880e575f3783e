#!/usr/bin/env bash
# Sets ingestd up as a systemd service on this host: the README's "Run it as a service" steps,
# idempotently. Run again, it upgrades ingestd in its virtualenv and changes nothing else.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: sudo deploy/install.sh [--instance NAME] [--watch-dir DIR] [--token-file FILE]
                              [--wheels DIR] [--no-check]
       sudo deploy/install.sh --uninstall [--instance NAME]

Sets ingestd up as a systemd service, then says what to run next
(sudo systemctl enable --now ingestd). Each step is skipped when already done, so running it
again only upgrades ingestd (restarting its units if the code changed):

  /opt/ingestd/venv                a virtualenv with ingestd from this checkout (or --wheels)
  ingestd                          the system user and group the service runs as
  /etc/ingestd/config.toml         from config.example.toml; never overwritten
  /etc/ingestd/wistia-token        the API token (0600 root), the unit's credential; asked for
                                   on a terminal, or read from --token-file; never overwritten
  the watch folder                 the config's watch_dir, made ingestd:ingestd 2775 if missing
  /usr/local/lib/systemd/system/   ingestd.service and ingestd@.service
  /etc/systemd/system/UNIT.d/50-install.conf
                                   ReadWritePaths= for the config's watch_dir (and archive_dir)
then runs `ingestd check` as the service will run (its user, credential and state directory).

Options:
  --instance NAME    set up ingestd@NAME instead: /etc/ingestd/NAME.toml, the token
                     /etc/ingestd/NAME.wistia-token, the ledger in /var/lib/ingestd/NAME and
                     its own watch folder (default /srv/wistia-inbox-NAME)
  --watch-dir DIR    the watch folder of a new config (default /srv/wistia-inbox); an existing
                     config's watch_dir is used as it is
  --token-file FILE  the API token's file (its first line), instead of asking for it
  --wheels DIR       install ingestd and its dependencies from the wheels in DIR, offline
                     (pip --no-index), instead of building this checkout and using PyPI
  --no-check         skip `ingestd check`
  --uninstall        stop and disable the unit (or the instance) and remove what install.sh
                     made for it; the units and the virtualenv go with the last one. Kept:
                     /etc/ingestd (config, tokens), the ledger, the folders, the ingestd user.
  -h, --help         this text
EOF
}

PREFIX=/opt/ingestd
VENV=$PREFIX/venv
ETC=/etc/ingestd
UNIT_DIR=/usr/local/lib/systemd/system
DROPIN_ROOT=/etc/systemd/system
DROPIN_NAME=50-install.conf
SERVICE_USER=ingestd
INBOX=/srv/wistia-inbox
SRC=$(cd "$(dirname "$0")/.." && pwd)

build="" echo_off=no
cleanup() {
  [ "$echo_off" = no ] || stty echo 2>/dev/null || true
  [ -z "$build" ] || rm -rf "$build"
}
trap cleanup EXIT

say() { printf '%s\n' "$*"; }
step() { printf '  %-14s %s\n' "$1" "$2"; }
die() {
  printf 'install.sh: %s\n' "$1" >&2
  exit "${2:-1}"
}

instance="" watch_dir="" token_file="" wheels="" check=yes uninstall=no
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) [ $# -ge 2 ] || die "--instance needs a NAME" 2; instance=$2; shift 2 ;;
    --watch-dir) [ $# -ge 2 ] || die "--watch-dir needs a DIR" 2; watch_dir=$2; shift 2 ;;
    --token-file) [ $# -ge 2 ] || die "--token-file needs a FILE" 2; token_file=$2; shift 2 ;;
    --wheels) [ $# -ge 2 ] || die "--wheels needs a DIR" 2; wheels=$2; shift 2 ;;
    --no-check) check=no; shift ;;
    --uninstall) uninstall=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" 2 ;;
  esac
done

if [ -n "$instance" ]; then
  case "$instance" in
    config | *[!A-Za-z0-9_.-]* | [!A-Za-z0-9]*)
      die "--instance $instance: a name of letters, digits, '_', '.' and '-' (starting with a letter or digit; not 'config')" 2 ;;
  esac
  [ "${#instance}" -le 64 ] || die "--instance: at most 64 characters" 2
  unit="ingestd@$instance.service"
  config=$ETC/$instance.toml
  token=$ETC/$instance.wistia-token
  state=ingestd/$instance
  default_watch=$INBOX-$instance
else
  unit=ingestd.service
  config=$ETC/config.toml
  token=$ETC/wistia-token
  state=ingestd
  default_watch=$INBOX
fi
dropin_dir=$DROPIN_ROOT/$unit.d
[ "$(id -u)" = 0 ] || die "run it as root: sudo $0 $*"
systemd_up=no
[ -d /run/systemd/system ] && systemd_up=yes

# A path that goes into the config and into ReadWritePaths= as it is.
plain_path() {
  case "$1" in
    /*) ;;
    *) die "$2: $1 is not an absolute path" 2 ;;
  esac
  case "$1" in
    *[!A-Za-z0-9/_.@+,:=-]*)
      die "$2: $1 has characters install.sh does not write into a unit (spaces, quotes, % or \$); set it up by hand (README)" 2 ;;
  esac
}

# --- uninstall ---------------------------------------------------------------------------------

other_installs() {
  # The other units install.sh set up on this host (their drop-ins are its marks).
  local mark
  for mark in "$DROPIN_ROOT/ingestd.service.d/$DROPIN_NAME" \
      "$DROPIN_ROOT"/ingestd@*.service.d/"$DROPIN_NAME"; do
    [ -e "$mark" ] || continue
    [ "$mark" = "$dropin_dir/$DROPIN_NAME" ] && continue
    basename "$(dirname "$mark")" .d
  done
}

if [ "$uninstall" = yes ]; then
  say "Removing $unit"
  if [ "$systemd_up" = yes ] && systemctl cat "$unit" >/dev/null 2>&1; then
    systemctl disable --now --quiet "$unit" 2>/dev/null || true
    systemctl reset-failed "$unit" 2>/dev/null || true
    step "$unit" "stopped and disabled"
  fi
  if [ -e "$dropin_dir/$DROPIN_NAME" ]; then
    rm -f "$dropin_dir/$DROPIN_NAME"
    rmdir "$dropin_dir" 2>/dev/null || true
    step "drop-in" "removed $dropin_dir/$DROPIN_NAME"
  else
    step "drop-in" "none (install.sh had not set up $unit)"
  fi
  others=$(other_installs)
  if [ -n "$others" ]; then
    step "kept" "the units and $VENV: still used by $(printf '%s' "$others" | tr '\n' ' ')"
  else
    rm -f "$UNIT_DIR/ingestd.service" "$UNIT_DIR/ingestd@.service"
    step "units" "removed ingestd.service and ingestd@.service from $UNIT_DIR"
    rm -rf "$VENV"
    rmdir "$PREFIX" 2>/dev/null || true
    step "virtualenv" "removed $VENV"
  fi
  [ "$systemd_up" = yes ] && systemctl daemon-reload
  say "Kept: $config, $token, the ledger in /var/lib/$state, the watch folder, and the"
  say "$SERVICE_USER user (it owns them; \`userdel $SERVICE_USER\` once they are gone too)."
  exit 0
fi

# --- install -----------------------------------------------------------------------------------

if [ ! -d "$SRC/deploy/systemd" ] || [ ! -f "$SRC/config.example.toml" ]; then
  die "run it from a checkout of ingestd ($SRC has no deploy/systemd or config.example.toml)"
fi
if [ -n "$wheels" ]; then
  [ -d "$wheels" ] || die "--wheels $wheels: not a folder" 2
  wheels=$(cd "$wheels" && pwd)
fi
if [ -n "$token_file" ] && [ ! -r "$token_file" ]; then
  die "--token-file $token_file: cannot read it" 2
fi
if [ -n "$watch_dir" ]; then
  watch_dir=${watch_dir%/}
  plain_path "$watch_dir" --watch-dir
fi
say "Setting up $unit"

# 1. Python 3.11 or newer, with venv (Debian ships it apart: python3-venv).
python_ok() {
  command -v python3 >/dev/null 2>&1 \
    && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if [ ! -x "$VENV/bin/python" ] && ! python_ok; then
  if command -v apt-get >/dev/null 2>&1; then
    step "python3" "installing python3 and python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3 python3-venv >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null; } \
      || true
  fi
  python_ok || die "ingestd needs Python 3.11 or newer with its venv module (Debian: apt-get install python3-venv)"
fi

# 2. The virtualenv, and ingestd in it (upgraded on every run).
fingerprint() {
  # What runs: the hashes of every installed distribution's files, ingestd's included (not
  # where pip took a wheel from: a build folder has a new name each time).
  cat "$VENV"/lib/python3*/site-packages/*.dist-info/RECORD 2>/dev/null \
    | grep -v '/direct_url.json,' || true
}
before=$(fingerprint | sha256sum)
if [ -x "$VENV/bin/python" ]; then
  venv_state=kept
else
  install -d -m 0755 "$PREFIX"
  python3 -m venv "$VENV"
  venv_state="created"
fi
pip=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
if [ -n "$wheels" ]; then
  source_args=(--no-index --find-links "$wheels" ingestd)
else
  # Built from a copy: pip would leave root-owned build files in the checkout.
  build=$(mktemp -d)
  cp -R "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/ingestd" "$build/"
  "${pip[@]}" wheel --no-deps --wheel-dir "$build/dist" "$build"
  source_args=("$build"/dist/ingestd-*.whl)
fi
"${pip[@]}" install --upgrade "${source_args[@]}"
# The same version number with new code is still an upgrade.
"${pip[@]}" install --force-reinstall --no-deps "${source_args[@]}"
after=$(fingerprint | sha256sum)
upgraded=no
if [ "$venv_state" = kept ] && [ "$before" != "$after" ]; then
  upgraded=yes
  venv_state=upgraded
elif [ "$venv_state" = kept ]; then
  venv_state="up to date"
fi
step "virtualenv" "$VENV $venv_state ($("$VENV/bin/ingestd" --version))"

# 3. The user the service runs as (its home is the state directory; it cannot log in).
if getent passwd "$SERVICE_USER" >/dev/null; then
  step "user" "$SERVICE_USER exists"
else
  useradd --system --user-group --home-dir /var/lib/ingestd --no-create-home \
    --shell /usr/sbin/nologin "$SERVICE_USER"
  step "user" "$SERVICE_USER created"
fi

# 4. The config, from the example; an existing one is never touched.
install -d -m 0755 "$ETC"
if [ -e "$config" ]; then
  step "config" "$config kept"
else
  new_watch=${watch_dir:-$default_watch}
  new_config=$(mktemp)
  sed -e "s|^watch_dir = .*|watch_dir = \"$new_watch\"|" \
    -e "s|^ledger = .*|ledger = \"/var/lib/$state/ledger.db\"|" \
    "$SRC/config.example.toml" >"$new_config"
  install -m 0640 -o root -g "$SERVICE_USER" "$new_config" "$config"
  rm -f "$new_config"
  step "config" "$config written from config.example.toml (root:$SERVICE_USER 0640)"
fi
# The folders the service writes to, as the config names them. A warning when another config in
# /etc/ingestd watches the same tree: both services would upload what is in it.
read_folders() {
  "$VENV/bin/python" - "$config" <<'EOF'
import sys, tomllib
from pathlib import Path


def folders(path):
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    ingest = config.get("ingest", {})
    found = [config.get("watch_dir", "")]
    if ingest.get("after_upload") == "move" and ingest.get("archive_dir"):
        found.append(ingest["archive_dir"])
    return [path.parent / folder if folder else None for folder in found]


path = Path(sys.argv[1])
try:
    mine = folders(path)
except (OSError, ValueError) as exc:
    sys.exit(f"install.sh: {path}: {exc}")
print("\n".join(str(folder or "") for folder in mine))
for other in sorted(set(path.parent.glob("*.toml")) - {path}):
    try:
        theirs = folders(other)[0]
    except (OSError, ValueError):
        continue
    if mine[0] and theirs and (mine[0] == theirs or theirs in mine[0].parents
                               or mine[0] in theirs.parents):
        print(f"    warning: {other} watches {theirs} too: both services would upload what is "
              f"in {max(mine[0], theirs, key=lambda p: len(p.parts))}", file=sys.stderr)
EOF
}
folders=$(read_folders) || exit 1
config_watch=$(printf '%s\n' "$folders" | head -n 1)
[ -n "$config_watch" ] || die "$config sets no watch_dir: set it, then run install.sh again"
if [ -n "$watch_dir" ] && [ "$watch_dir" != "$config_watch" ]; then
  die "$config watches $config_watch, not $watch_dir: install.sh never changes a config; edit watch_dir there, then run it again without --watch-dir"
fi
while IFS= read -r folder; do plain_path "$folder" "$config"; done <<<"$folders"

# 5. The token, as the unit's credential: root only.
if [ -e "$token" ]; then
  step "token" "$token kept"
  [ -z "$token_file" ] || say "    (--token-file not used: a token is stored already; to replace it, install -m 0600 it over $token, then systemctl reload $unit)"
else
  if [ -n "$token_file" ]; then
    value=$(head -n 1 "$token_file" | tr -d '\r')
  elif [ -t 0 ]; then
    printf 'Wistia API token (Account Settings > API; it is not shown): '
    echo_off=yes
    stty -echo
    IFS= read -r value || value=""
    stty echo
    echo_off=no
    printf '\n'
  else
    die "no token stored yet: pass --token-file FILE, or run install.sh on a terminal to be asked for it"
  fi
  value=$(printf '%s' "$value" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
  case "$value" in
    "") die "the token is empty" ;;
    *[[:space:]]*) die "the token has spaces in it: paste only the token" ;;
  esac
  (umask 077 && printf '%s\n' "$value" >"$token.new")
  chown root:root "$token.new"
  mv -f "$token.new" "$token"
  unset value
  step "token" "$token stored (root 0600)"
fi

# 6. The folders: made for the service if missing, left as they are otherwise.
while IFS= read -r folder; do
  if [ -d "$folder" ]; then
    step "folder" "$folder kept ($(stat -c '%U:%G %a' "$folder"))"
  else
    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 2775 "$folder"
    step "folder" "$folder created ($SERVICE_USER:$SERVICE_USER 2775)"
  fi
  case "$folder" in
    /home/*) say "    $folder is under /home, which ProtectHome=yes hides: see README, \"A watch folder under /home\"" ;;
  esac
done <<<"$folders"

# 7. The units (shipped files, replaced on upgrade; your changes go in drop-ins or
# /etc/systemd/system) and this unit's drop-in with its folders.
changed_units=no
install_if_changed() {  # SOURCE TARGET MODE
  if ! cmp -s "$1" "$2"; then
    install -D -m "$3" "$1" "$2"
    changed_units=yes
    return 0
  fi
  return 1
}
for name in ingestd.service ingestd@.service; do
  if install_if_changed "$SRC/deploy/systemd/$name" "$UNIT_DIR/$name" 0644; then
    step "unit" "$UNIT_DIR/$name installed"
  else
    step "unit" "$UNIT_DIR/$name unchanged"
  fi
  [ ! -e "$DROPIN_ROOT/$name" ] \
    || say "    note: $DROPIN_ROOT/$name exists (a copy made by hand?) and overrides it"
done
dropin=$(mktemp)
{
  say "# Written by deploy/install.sh from $config, and again on each run:"
  say "# the folders ingestd writes to. Your own changes: systemctl edit $unit"
  say "[Service]"
  while IFS= read -r folder; do say "ReadWritePaths=-$folder"; done <<<"$folders"
} >"$dropin"
if install_if_changed "$dropin" "$dropin_dir/$DROPIN_NAME" 0644; then
  step "drop-in" "$dropin_dir/$DROPIN_NAME written"
else
  step "drop-in" "$dropin_dir/$DROPIN_NAME unchanged"
fi
rm -f "$dropin"

if [ "$systemd_up" = no ]; then
  say "systemd is not running here: nothing started or checked."
  exit 0
fi
[ "$changed_units" = no ] || systemctl daemon-reload

# 8. An upgrade takes effect: the units that run ingestd and were running are restarted.
if [ "$upgraded" = yes ]; then
  running=$(systemctl list-units --state=active --plain --no-legend 'ingestd.service' \
    'ingestd@*.service' | awk '{print $1}')
  if [ -n "$running" ]; then
    # shellcheck disable=SC2086
    systemctl try-restart $running
    step "restarted" "$(printf '%s' "$running" | tr '\n' ' ')(new code)"
  fi
fi

# 9. The check, run as the service will run: its user, its credential, and its state
# directory (which systemd makes on first use: without it /var/lib is not writable).
check_cmd=(systemd-run --pipe --wait --quiet --collect -p User="$SERVICE_USER"
  -p StateDirectory="$state" -p StateDirectoryMode=0700
  -p LoadCredential=wistia-token:"$token"
  "$VENV/bin/ingestd" --config "$config" check)
if [ "$check" = yes ]; then
  say "ingestd check, as $unit will run:"
  if ! "${check_cmd[@]}" </dev/null; then
    say "The check failed: fix what it says above, then run install.sh again."
    exit 1
  fi
fi

if systemctl is-active --quiet "$unit"; then
  say "Done: $unit is running (systemctl status $unit)."
else
  say "Done. Start it, and at every boot:  sudo systemctl enable --now $unit"
fi
