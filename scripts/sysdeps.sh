#!/usr/bin/env bash
# Install the Debian packages edgetk's firmware path needs (gcc, QEMU, the Arm cross compiler, clang + libFuzzer,
# headless Chromium for the report test, OpenSSH server and ser2net for the remote-target tests),
# or say exactly how to.
set -u
if [ "${1:-}" = "--venv" ]; then   # Debian's Python needs its venv package before `python -m venv` works
  py=$(basename "${2:-python3}")
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "edgetk: installing ${py}-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${py}-venv" >/dev/null && exit 0
  fi
  echo "edgetk: ${py} cannot create virtual environments; install them with: sudo apt-get install ${py}-venv"
  exit 1
fi
need=()
command -v gcc >/dev/null               || need+=(gcc)
command -v qemu-system-arm >/dev/null   || need+=(qemu-system-arm)
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
# clang with its fuzzer runtime (libFuzzer): the firmware command parser's fuzz harness (tests/test_fuzz_firmware.py)
if ! command -v clang >/dev/null; then
  need+=(clang libclang-rt-dev)
elif ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    | clang -x c -fsanitize=fuzzer - -o /dev/null >/dev/null 2>&1; then
  need+=(libclang-rt-dev)
fi
# headless Chromium: the test that opens the profile's report.html and screenshots it (tests/test_report_html.py)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
# sshd and ser2net: the robot-over-SSH and the RFC 2217 board-lab tests start their own on 127.0.0.1
# (tests/test_hil_ssh.py, tests/test_hil_rfc2217.py)
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null || need+=(openssh-server)
command -v ser2net >/dev/null || [ -x /usr/sbin/ser2net ] || need+=(ser2net)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "edgetk: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || { echo "edgetk: apt-get failed; the emulator, cross-compiler and fuzzer tests will skip (or fail under EDGETK_REQUIRE_QEMU=1)"; exit 0; }
else
  echo "edgetk: missing ${need[*]}. Install them with:"
  echo "    sudo apt-get install ${need[*]}"
  echo "edgetk: carrying on with the fallbacks (host simulator, analytic estimates)."
fi
exit 0
