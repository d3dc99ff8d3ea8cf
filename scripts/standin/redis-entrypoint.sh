#!/bin/sh
# Entrypoint of hookline's Redis stand-in image (scripts/compose_images.sh),
# for engines that cannot pull the official redis image. Like that image's:
#   - `redis-server ...`, flags alone, or a *.conf file run redis-server;
#   - protected mode is off (the official image is built that way): inside a
#     container, redis listens on the container's network without a password;
#   - started as root it owns /data (its working directory), then runs as the
#     redis user;
#   - anything else is run as given.
set -e

case "${1:-}" in
-* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ]; then
    case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis:redis '{}' +
        exec setpriv --reuid=redis --regid=redis --init-groups -- "$0" "$@"
    fi
fi

exec "$@"
