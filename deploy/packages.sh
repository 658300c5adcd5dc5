# deploy/packages.sh: the Debian packages actorbus needs, and a function that installs the
# missing ones. Sourced by deploy/up.sh and tests/run.sh.
ACTOR_PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev libuv1-dev libcmocka-dev
libzmq3-dev libmsgpack-dev libsqlite3-dev libcurl4-openssl-dev valgrind python3 python3-uvloop
python3-zmq python3-msgpack procps nodejs npm python3-yaml iproute2 libpq-dev postgresql libjemalloc-dev"
# Only the web console's browser test needs these (tests/lib/cdp.py installs them with
# ACTOR_PACKAGES="$ACTOR_BROWSER_PACKAGES" actor_install_packages): too big for every machine.
ACTOR_BROWSER_PACKAGES="chromium"

actor_install_packages() {
    local missing=()
    for p in $ACTOR_PACKAGES; do
        # nodejs/npm: any node on PATH will do. NodeSource's nodejs bundles npm and conflicts
        # with Debian's npm package, so installing npm beside it would fail.
        case $p in
            nodejs) command -v node >/dev/null && continue ;;
            npm) command -v npm >/dev/null && continue ;;
        esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}
