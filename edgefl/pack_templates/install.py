"""Install an edgefl agent pack on the device (Python 3.6+, standard library only).

Runs from the unpacked pack directory (install.sh calls it). Steps:

0. verify the pack: PACK.json's own sha256 and the sha256 of every file it lists, with the pack's
   own ``edgefl.runtime.bundle`` (standard library only), before anything else -- --check-only too;
1. check the interpreter against the profile's Python (JetPack 4.6 → 3.6: TensorRT's Python
   bindings exist only for the system Python);
2. optionally create a virtualenv with --system-site-packages (so JetPack's tensorrt stays visible);
3. install each pinned package of the edge stack unless the exact pinned version is already there;
4. check an inference engine is importable (TensorRT or onnxruntime from the device's own install);
5. copy the runtime, the bundle and the agent config under PREFIX and write the systemd unit
   (enable and start it with systemctl when asked and possible).

Every step is planned first by pure functions (plan_*) and printed; --check-only stops after
planning and exits 1 when something would have to be installed or is missing.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT_NAME = "edgefl-agent.service"
PAYLOAD = ("edgefl", "bundle", "data", "agent.json", "first_start.py", "PACK.json")

# distribution name -> import name (the version comes from the installed metadata)
MODULES = {"numpy": "numpy", "paho-mqtt": "paho.mqtt.client", "dataclasses": "dataclasses",
           "onnxruntime": "onnxruntime", "tensorrt": "tensorrt"}
ENGINE_MODULES = ("tensorrt", "onnxruntime")


class InstallError(Exception):
    """A problem the user fixes; printed as one line."""


def read_pack(pack_dir):
    """PACK.json, verified with its every file by the pack's own edgefl.runtime.bundle."""
    if pack_dir not in sys.path:
        sys.path.insert(0, pack_dir)
    sys.dont_write_bytecode = True  # leave the unpacked pack as it came
    try:
        from edgefl.runtime.bundle import read_pack as read_verified
        from edgefl.runtime.errors import EdgeRuntimeError
    except ImportError as exc:
        raise InstallError("%s lacks the edgefl runtime (%s) — unpack the whole archive again"
                           % (pack_dir, exc))
    try:
        return read_verified(pack_dir, verify=True)
    except EdgeRuntimeError as exc:
        raise InstallError(str(exc))


def version_matches(installed, spec):
    """True when an installed version satisfies a pin: '==1.19.5', '==2.2.*' or '' (anything)."""
    if installed is None:
        return False
    if not spec:
        return True
    want = spec[2:] if spec.startswith("==") else spec
    if want.endswith(".*"):
        return installed == want[:-2] or installed.startswith(want[:-1])
    return installed == want


PROBE = r"""
import json, os, re, sys
names = json.loads(sys.argv[1])
out = {}
for name in names:
    module = json.loads(sys.argv[2]).get(name, name.replace("-", "_"))
    try:
        mod = __import__(module)
    except Exception:
        out[name] = None
        continue
    key = re.sub(r"[-_.]+", "_", name).lower()
    version = None
    for entry in sys.path:
        if not os.path.isdir(entry):
            continue
        for item in os.listdir(entry):
            m = re.match(r"^(.+?)-([^-]+?)(-py[^-]*)?\.(dist-info|egg-info)$", item)
            if m and re.sub(r"[-_.]+", "_", m.group(1)).lower() == key:
                version = m.group(2)
                break
        if version:
            break
    out[name] = version or str(getattr(mod, "__version__", "unknown"))
print(json.dumps(out))
"""


def probe_versions(python, names):
    """Installed versions (from package metadata) of importable distributions; None where missing."""
    out = subprocess.check_output([python, "-c", PROBE, json.dumps(list(names)), json.dumps(MODULES)],
                                  env=_clean_env())
    return json.loads(out.decode().strip().splitlines()[-1])


def plan_packages(pins, installed):
    """Pins that are not satisfied → the pip requirement strings to install (pure)."""
    todo = []
    for name, spec in sorted(pins.items()):
        if not version_matches(installed.get(name), spec):
            todo.append(name + spec if spec else name)
    return todo


def plan_engine(engine_versions, default_runtime):
    """Which inference engine the agent will use, or an InstallError saying how to get one (pure)."""
    present = [m for m in ENGINE_MODULES if engine_versions.get(m)]
    if not present:
        raise InstallError(
            "no inference engine: neither tensorrt nor onnxruntime imports — on JetPack install "
            "python3-libnvinfer (TensorRT) or an onnxruntime wheel for this Python (Jetson Zoo), then rerun"
        )
    return default_runtime if default_runtime in present else present[0]


def python_version(python):
    out = subprocess.check_output([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    return out.decode().strip()


def render_unit(template, prefix, python):
    return template.replace("@PREFIX@", prefix).replace("@PYTHON@", python)


def _clean_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def _say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def make_venv(base_python, venv_dir):
    if os.path.exists(os.path.join(venv_dir, "bin", "python")):
        _say("virtualenv %s exists" % venv_dir)
    else:
        _say("creating virtualenv %s (with system site-packages for TensorRT)" % venv_dir)
        subprocess.check_call([base_python, "-m", "venv", "--system-site-packages", venv_dir])
    return os.path.join(venv_dir, "bin", "python")


def copy_payload(pack_dir, prefix):
    if os.path.realpath(pack_dir) == os.path.realpath(prefix):
        return
    if not os.path.isdir(prefix):
        os.makedirs(prefix)
    for name in PAYLOAD:
        src, dst = os.path.join(pack_dir, name), os.path.join(prefix, name)
        if not os.path.exists(src):
            continue
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def install_unit(unit_text, prefix, systemd_dir, enable):
    local = os.path.join(prefix, UNIT_NAME)
    with open(local, "w") as fh:
        fh.write(unit_text)
    _say("systemd unit written: %s" % local)
    if not systemd_dir:
        return local
    target = os.path.join(systemd_dir, UNIT_NAME)
    try:
        shutil.copy2(local, target)
    except (IOError, OSError) as exc:
        raise InstallError("cannot write %s (%s) — run as root, or pass --systemd-dir '' to only write "
                           "the unit under the prefix" % (target, exc))
    _say("systemd unit installed: %s" % target)
    if enable:
        if shutil.which("systemctl") is None:
            raise InstallError("systemctl not found — start the agent by hand: see %s" % local)
        subprocess.check_call(["systemctl", "daemon-reload"])
        subprocess.check_call(["systemctl", "enable", "--now", UNIT_NAME])
        _say("agent enabled and started (journalctl -u %s -f)" % UNIT_NAME)
    return target


def parse_args(argv):
    p = argparse.ArgumentParser(description="Install the edgefl agent pack on this device.")
    p.add_argument("--prefix", default="/opt/edgefl-agent", help="where the agent lives")
    p.add_argument("--python", default=sys.executable, help="interpreter to run the agent with")
    p.add_argument("--venv", action="store_true",
                   help="create PREFIX/venv from --python with system site-packages and install into it")
    p.add_argument("--systemd-dir", default="/etc/systemd/system",
                   help="where to put the unit ('' = only write it under PREFIX)")
    p.add_argument("--enable", action="store_true", help="systemctl enable --now the agent")
    p.add_argument("--check-only", action="store_true", help="plan and report; install nothing")
    p.add_argument("--force", action="store_true", help="continue when the Python version differs")
    p.add_argument("--pip-arg", action="append", default=[], help="extra pip argument (repeatable)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pack = read_pack(HERE)
    prefix = os.path.abspath(args.prefix)
    python = args.python
    want_py = pack["profile"]["python"]
    have_py = python_version(python)
    _say("edgefl agent pack for %s (JetPack %s, Python %s)" % (
        pack["profile"]["name"], pack["profile"]["jetpack"] or "-", want_py))
    if have_py != want_py:
        msg = "interpreter %s is Python %s but the profile needs %s" % (python, have_py, want_py)
        if not args.force:
            raise InstallError(msg + " — pass --python with the system python%s or --force" % want_py)
        _say("warning: " + msg)
    if args.venv and not args.check_only:
        python = make_venv(python, os.path.join(prefix, "venv"))

    pins = pack["pins"]
    installed = probe_versions(python, sorted(pins))
    for name in sorted(pins):
        _say("  %-12s want %-10s have %s" % (name, pins[name] or "any", installed.get(name) or "-"))
    todo = plan_packages(pins, installed)
    engines = probe_versions(python, list(ENGINE_MODULES))
    engine = plan_engine(engines, pack["profile"]["default_runtime"])
    _say("inference engine: %s %s" % (engine, engines[engine]))
    if args.check_only:
        _say("would install: %s" % (" ".join(todo) or "nothing"))
        return 1 if todo else 0
    if todo:
        _say("installing: %s" % " ".join(todo))
        subprocess.check_call([python, "-m", "pip", "install"] + args.pip_arg + todo)
        still = plan_packages(pins, probe_versions(python, sorted(pins)))
        if still:
            raise InstallError("pip finished but %s is still not satisfied — check pip's output" % still)
    else:
        _say("edge stack already satisfied: nothing to install")

    copy_payload(HERE, prefix)
    env = _clean_env()
    env["PYTHONPATH"] = prefix
    subprocess.check_call([python, "-c", "import edgefl.runtime"], env=env, cwd=prefix)
    _say("runtime imports under %s" % python)
    with open(os.path.join(HERE, UNIT_NAME + ".in")) as fh:
        unit = render_unit(fh.read(), prefix, python)
    install_unit(unit, prefix, args.systemd_dir, args.enable)
    _say("installed to %s" % prefix)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InstallError as exc:
        sys.stderr.write("error: %s\n" % exc)
        sys.exit(2)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write("error: command failed (%s): %s\n" % (exc.returncode, " ".join(exc.cmd)))
        sys.exit(2)
    except (IOError, OSError) as exc:
        sys.stderr.write("error: %s — check the --prefix is writable (run as root for /opt)\n" % exc)
        sys.exit(2)
