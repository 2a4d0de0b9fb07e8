# Shared by the infra scripts: log lines and installing missing Debian packages.
say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*"; }

apt_updated=""
ensure_package() { # command, package
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "$2 is not installed; run this script as root, or install it: apt-get install $2"; exit 1
  fi
  if [ -z "$apt_updated" ]; then say "apt-get update"; apt-get update -qq; apt_updated=1; fi
  say "installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

ensure_pip_tool() { # command, package, version
  # Scripts that pip installs land in the interpreter's scripts directory, or the
  # user's when pip installs for the user; neither is on PATH everywhere.
  PATH="$(python3 -c 'import site, sysconfig; print(sysconfig.get_path("scripts") + ":" + site.getuserbase() + "/bin")'):$PATH"
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing $2 $3"
  python3 -m pip install --quiet "$2==$3"
}
