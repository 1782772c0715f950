#!/bin/sh
# Prepare the host directories that docker-compose.yml bind-mounts, before Docker would
# create missing ones as root. Both containers run as uid:gid 1000:1000, so:
#
#   tor/conf    755  torrc (mounted read-only into tor)
#   tor/run     755  tor's runtime directory (/var/run/tor)
#   tor/data    700  tor's DataDirectory: state, and in hs/directory the onion's keys
#   data        700  the directory's data dir: its key, ops token, config.toml
#
# all owned by 1000:1000 (the layout joinmarket-ng documents for its tor directories).
#
# Usage: sudo sh setup.sh [DIR]      DIR defaults to this script's directory
#
# As root it sets owners with chown; as uid 1000 no chown is needed; any other user is
# told to use sudo. Idempotent: a second run changes nothing; a wrong mode or owner is
# repaired; nothing inside the directories is touched.
set -eu

owner=1000
group=1000

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
base=${1:-$here}

me=$(id -u)
if [ "$me" -ne 0 ] && [ "$me" -ne "$owner" ]; then
	echo "setup.sh: the directories must be owned by uid $owner, the user of both containers;" >&2
	echo "setup.sh: you are uid $me and cannot chown. Run it as root:" >&2
	echo "    sudo sh $0${1:+ $1}" >&2
	exit 1
fi

mkdir -p "$base"
base=$(CDPATH='' cd -- "$base" && pwd)

# want DIR MODE PERMS: create DIR if missing, then make its owner and mode right. PERMS is
# MODE as ls prints it.
problems=0
want() {
	rel=$1 mode=$2 perms=$3
	dir=$base/$rel
	status=ok
	if [ ! -d "$dir" ]; then
		mkdir -p "$dir"
		status=created
	fi
	if [ "$(owner_of "$dir")" != "$owner:$group" ]; then
		if [ "$me" -eq 0 ]; then
			chown "$owner:$group" "$dir"
		fi
		[ "$status" = created ] || status=fixed
	fi
	if [ "$(perms_of "$dir")" != "$perms" ]; then
		chmod "$mode" "$dir" || true
		[ "$status" = created ] || status=fixed
	fi
	if [ "$(owner_of "$dir")" != "$owner:$group" ] || [ "$(perms_of "$dir")" != "$perms" ]; then
		problems=$((problems + 1))
		printf '%-8s %-23s is %s %s, wanted %s %s:%s\n' WRONG "$rel" \
			"$(perms_of "$dir")" "$(owner_of "$dir")" "$perms" "$owner" "$group"
		return
	fi
	printf '%-8s %-23s %s %s:%s\n' "$status" "$rel" "$mode" "$owner" "$group"
}
# ls -ln's fields are POSIX; stat's options differ between GNU and BSD.
# shellcheck disable=SC2012
owner_of() { ls -ldnL "$1" | awk '{print $3 ":" $4}'; }
# shellcheck disable=SC2012
perms_of() { ls -ldnL "$1" | cut -c1-10; }

want tor/conf 755 drwxr-xr-x
want tor/run 755 drwxr-xr-x
want tor/data 700 drwx------
want tor/data/hs 700 drwx------
want tor/data/hs/directory 700 drwx------
want data 700 drwx------

if [ "$problems" -ne 0 ]; then
	echo "setup.sh: $problems of these directories are WRONG; run it as root:" >&2
	echo "    sudo sh $0${1:+ $1}" >&2
	exit 1
fi

# tor (uid 1000) must be able to read torrc, whoever owns it.
torrc=$base/tor/conf/torrc
if [ ! -e "$torrc" ] && [ -f "$here/tor/conf/torrc" ]; then
	cp "$here/tor/conf/torrc" "$torrc"
	chmod 644 "$torrc"
	echo "created  tor/conf/torrc          (copied from $here)"
fi
if [ ! -f "$torrc" ]; then
	echo "setup.sh: warning: $torrc is missing: put the torrc there" >&2
elif [ "$(perms_of "$torrc" | cut -c8)" != r ]; then
	chmod a+r "$torrc" || echo "setup.sh: warning: tor cannot read $torrc: chmod a+r it" >&2
fi

cat <<EOF

Ready. Next steps, from the directory of docker-compose.yml:

  docker compose up -d --build
  docker compose ps                      # tor, then directory, become healthy

The onion (tor writes it at its first start; the directory advertises <onion>:5222):

  sudo cat $base/tor/data/hs/directory/hostname
  docker compose exec tor cat /var/lib/tor/hs/directory/hostname

Clients put "<onion>:5222" in directory_nodes. Status and health:

  docker compose exec directory jm-directory-ctl status
  docker compose logs -f directory

Back up tor/data/hs/directory (the onion's keys) and data/ (the directory's nick key).
EOF
