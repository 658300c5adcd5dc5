"""The deploy files (deploy/): every YAML file parses, the systemd units, compose services,
Kubernetes containers and the Dockerfile name binaries the build makes, every flag they pass
is one that binary's --help lists, and the config files' keys are broker flags. The image is
built only where `docker info` works (ACTOR_DOCKER_BUILD=1 asks for it; it is slow)."""
import configparser
import glob
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import abtest  # noqa: E402

ROOT = os.path.normpath(os.path.join(abtest.HERE, "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
_help = {}


def _bins():
    b = {"actor-broker": os.environ.get("ACTOR_BROKER"),
         "actor-worker": os.environ.get("ACTOR_WORKER"),
         "actorctl": os.environ.get("ACTORCTL")}
    return {k: v for k, v in b.items() if v and os.path.isfile(v)}


def flags_of(binary):
    """The --flags binary's --help lists."""
    if binary not in _help:
        exe = _bins().get(binary)
        assert exe, "no build of %s (set ACTOR_BROKER / ACTOR_WORKER / ACTORCTL)" % binary
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
        _help[binary] = set(re.findall(r"--([a-z][a-z0-9-]*)", out.stdout + out.stderr))
    return _help[binary]


def check_argv(argv, where):
    """argv[0] must be one of the binaries (a path or a name), each --flag one it accepts."""
    assert argv, "%s: empty command" % where
    binary = os.path.basename(argv[0])
    assert binary in ("actor-broker", "actor-worker", "actorctl"), \
        "%s: runs %r, not a binary of this build" % (where, argv[0])
    known = flags_of(binary)
    for a in argv[1:]:
        if not a.startswith("--"):
            continue
        name = a[2:].split("=", 1)[0]
        assert name in known, "%s: %s does not accept --%s" % (where, binary, name)
    return binary


def check_conf_keys(text, where):
    keys = flags_of("actor-broker")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert "=" in line, "%s: %r is not key = value" % (where, line)
        key = line.split("=", 1)[0].strip()
        assert key in keys, "%s: %r is not a broker flag" % (where, key)


def _yaml():
    try:
        import yaml
    except ImportError:
        abtest.skip("python3-yaml is not installed (deploy/packages.sh lists it)")
    return yaml


def _env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


def test_every_yaml_file_parses():
    yaml = _yaml()
    files = [os.path.join(DEPLOY, "compose.yaml")] + glob.glob(os.path.join(DEPLOY, "k8s",
                                                                            "*.yaml"))
    assert len(files) >= 4, files
    for path in files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        assert docs, "%s is empty" % path


def test_systemd_units_run_built_binaries_with_known_flags():
    units = {"actor-broker.service": "actor-broker", "actor-worker@.service": "actor-worker"}
    env = {}
    for name in ("broker.env", "worker.env"):
        env.update(_env_file(os.path.join(DEPLOY, "systemd", name)))
    for unit, binary in units.items():
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        cp.optionxform = str
        cp.read(os.path.join(DEPLOY, "systemd", unit))
        for sec in ("Unit", "Service", "Install"):
            assert cp.has_section(sec), "%s has no [%s]" % (unit, sec)
        svc = cp["Service"]
        assert svc["KillSignal"] == "SIGTERM", unit  # the drain
        assert "EnvironmentFile" in svc, unit
        argv = shlex.split(svc["ExecStart"].replace("\\\n", " "))  # systemd's continuation
        # $VAR words expand (systemd splits them at spaces) to the env files' values.
        words = []
        for a in argv:
            m = re.fullmatch(r"\$\{?([A-Z_]+)\}?", a)
            words += shlex.split(env.get(m.group(1), "x")) if m else [a]
        assert check_argv(words, unit) == binary, (unit, words)
        if binary == "actor-worker":  # liveness: it speaks sd_notify (worker/watchdog.c)
            assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0, dict(svc)
    with open(os.path.join(DEPLOY, "systemd", "broker.conf")) as f:
        check_conf_keys(f.read(), "broker.conf")


def test_systemd_analyze_verify_finds_nothing_but_missing_binaries():
    import shutil
    import tempfile
    if not _has("systemd-analyze"):
        abtest.skip("no systemd-analyze here: unit syntax not verified")
    d = tempfile.mkdtemp(dir=abtest.tmpdir())
    src = os.path.join(DEPLOY, "systemd")
    shutil.copy(os.path.join(src, "actor-broker.service"), d)
    shutil.copy(os.path.join(src, "actor-worker@.service"),
                os.path.join(d, "actor-worker@1.service"))
    r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "actor-broker.service"),
                        os.path.join(d, "actor-worker@1.service")], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
    # The binaries are installed by `cmake --install`, not on the build machine.
    bad = [x for x in (r.stdout + r.stderr).splitlines()
           if x.strip() and "is not executable" not in x]
    assert not bad, bad


def test_compose_services_run_built_binaries_with_known_flags():
    yaml = _yaml()
    with open(os.path.join(DEPLOY, "compose.yaml")) as f:
        c = yaml.safe_load(f)
    svcs = c["services"]
    assert set(svcs) == {"broker", "worker"}, svcs
    assert check_argv(svcs["broker"]["command"], "compose broker") == "actor-broker"
    assert check_argv(svcs["worker"]["command"], "compose worker") == "actor-worker"
    assert "tcp://broker:5556" in svcs["worker"]["command"]  # the broker service's name
    for s in svcs.values():  # the worker can be scaled: no fixed name or host port
        assert "container_name" not in s and s["stop_signal"] == "SIGTERM", s
    assert "ports" not in svcs["worker"], svcs["worker"]
    for p in svcs["broker"]["ports"]:
        assert p.startswith("127.0.0.1:"), p  # clients reach it from this host only


def test_k8s_manifests_fit_together():
    yaml = _yaml()
    docs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "PersistentVolumeClaim",
                     "Service"], kinds
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    broker = by[("Deployment", "actorbus-broker")]
    worker = by[("Deployment", "actorbus-worker")]
    svc = by[("Service", "actorbus-broker")]
    assert broker["spec"]["replicas"] == 1
    assert broker["spec"]["strategy"]["type"] == "Recreate"
    labels = broker["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), (labels, svc)
    assert {p["port"] for p in svc["spec"]["ports"]} == {5555, 5556, 5557, 5558}
    for d, binary in ((broker, "actor-broker"), (worker, "actor-worker")):
        (ctr,) = d["spec"]["template"]["spec"]["containers"]
        assert check_argv(ctr["command"], d["metadata"]["name"]) == binary
        sel = d["spec"]["selector"]["matchLabels"]
        assert all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                   for k, v in sel.items()), d
    (wctr,) = worker["spec"]["template"]["spec"]["containers"]
    assert "tcp://actorbus-broker:5556" in wctr["command"]  # the Service's name
    for d, port in ((broker, 9464), (worker, 9465)):  # liveness through the loop's /metrics
        (ctr,) = d["spec"]["template"]["spec"]["containers"]
        assert ctr["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": port}, ctr
    assert "tcp://0.0.0.0:9465" in wctr["command"]
    conf = by[("ConfigMap", "actorbus-broker")]["data"]["broker.conf"]
    check_conf_keys(conf, "k8s configmap")


def test_pair_files_run_two_brokers_on_postgresql():
    """deploy/compose-pair.yaml and deploy/k8s-pair: two --pair brokers on one PostgreSQL URL,
    workers given both (compose) or the Service only the active one is ready behind (k8s)."""
    yaml = _yaml()
    with open(os.path.join(DEPLOY, "compose-pair.yaml")) as f:
        svcs = yaml.safe_load(f)["services"]
    assert set(svcs) == {"postgres", "broker-a", "broker-b", "worker"}, svcs
    for name in ("broker-a", "broker-b"):
        cmd = svcs[name]["command"]
        assert check_argv(cmd, "compose-pair " + name) == "actor-broker"
        assert "--pair" in cmd and cmd[cmd.index("--sessions") + 1].startswith("postgresql://")
    wcmd = svcs["worker"]["command"]
    assert check_argv(wcmd, "compose-pair worker") == "actor-worker"
    assert "tcp://broker-a:5556" in wcmd and "tcp://broker-b:5556" in wcmd, wcmd
    docs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s-pair", "*.yaml"))):
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    broker = by[("Deployment", "actorbus-broker")]
    assert broker["spec"]["replicas"] == 2
    (ctr,) = broker["spec"]["template"]["spec"]["containers"]
    assert ctr["command"][:2] == ["sh", "-c"], ctr["command"]
    argv = shlex.split(ctr["command"][2].replace("exec ", "", 1))
    assert check_argv(argv, "k8s-pair broker") == "actor-broker" and "--pair" in argv
    assert ctr["readinessProbe"]["tcpSocket"]["port"] == 5555  # the standby is never ready
    assert ("Service", "actorbus-postgres") in by and ("Secret", "actorbus-store") in by


def test_up_sh_states_the_trust_model_and_runs_with_curve_on_loopback():
    """./deploy/up.sh says who may connect; with --curve it starts everything with keys on
    loopback and the show still runs. It builds in ROOT/build: only run when that build is
    there (the up.sh build is then incremental)."""
    text = open(os.path.join(DEPLOY, "up.sh")).read()
    assert "security: none (loopback without CURVE)" in text and "--curve" in text
    if not os.path.isfile(os.path.join(ROOT, "build", "broker", "actor-broker")):
        abtest.skip("no %s/build: up.sh --curve not run" % ROOT)
    import random
    # Below the ephemeral range, where other processes' outgoing connections take ports; a
    # port taken between the check and the bind (a busy machine) is tried again elsewhere.
    for _ in range(3):
        base = random.randrange(20000, 30000, 4)
        if any(not _port_free(base + i) for i in range(4)):
            continue
        r = subprocess.run(["bash", os.path.join(DEPLOY, "up.sh"), "--demo", "--curve",
                            "--workers", "1", "--port-base", str(base)],
                           capture_output=True, text=True, timeout=600)
        logs = re.search(r"logs in (\S+)\)", r.stdout + r.stderr)
        broker_log = os.path.join(logs.group(1), "broker.log") if logs else ""
        if r.returncode == 0 or not os.path.isfile(broker_log) or \
                "Address already in use" not in open(broker_log).read():
            break
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "== security: CURVE on loopback ==" in r.stdout, r.stdout[-3000:]
    assert "children ran on 1 workers" in r.stdout, r.stdout[-3000:]


def _port_free(port):
    import socket
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_dockerfile_builds_debian_12_and_runs_the_broker():
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f.startswith("debian:12") for f in froms), froms
    cmd = re.search(r"^CMD\s+(\[.*?\])\s*$", text.replace("\\\n", " "), re.M | re.S)
    assert cmd, "no CMD"
    import json
    assert check_argv(json.loads(cmd.group(1)), "Dockerfile CMD") == "actor-broker"
    ok = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0 \
        if _has("docker") else False
    if not ok or os.environ.get("ACTOR_DOCKER_BUILD") != "1":
        print("NOTE: image not built (docker daemon %s; ACTOR_DOCKER_BUILD=1 builds it)" %
              ("reachable" if ok else "not reachable"))
        return
    r = subprocess.run(["docker", "build", "-f", os.path.join(DEPLOY, "Dockerfile"), "-t",
                        "actorbus:test", ROOT], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run(["docker", "run", "--rm", "actorbus:test", "actor-broker", "--version"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "actor-broker" in r.stdout, r


def _has(cmd):
    return any(os.access(os.path.join(p, cmd), os.X_OK)
               for p in os.environ.get("PATH", "").split(os.pathsep))


if __name__ == "__main__":
    abtest.run_tests(globals())
