"""Cross-file facts of the deployment files (scripts/check-deploy.sh). Arguments: the repository
root and a directory holding the resolved compose projects (docker-compose config --format
json) as <combination>.json. Prints one line per fact checked; exits 1 if any is false."""

import fnmatch
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT, RESOLVED = sys.argv[1], sys.argv[2]
os.chdir(ROOT)
failures = []


groups = {}


def ok(what):
    print(f"  ok    {what}")


def fail(what):
    print(f"  FAIL  {what}")
    failures.append(what)


def check(cond, what, group=None):
    """A fact; those of one `group` (the same fact of many services or combinations) print as
    one line with their count, each false one on its own."""
    if group is None:
        (ok if cond else fail)(what)
    else:
        counts = groups.setdefault(group, [0, 0])
        counts[0 if cond else 1] += 1
        if not cond:
            fail(what)
    return cond


def flush():
    for group, (good, bad) in groups.items():
        if not bad:
            ok(f"{group} ({good} checked)")
    groups.clear()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def section(title):
    flush()
    print(f"- {title}")


OUR_TARGETS = {"api-gateway", "user-service", "diary-service", "metachat"}
SERVICES = ["api-gateway", "user-service", "diary-service"]

# --- README: the documented variables ----------------------------------------------------------


def readme_variable_rows():
    """The rows of README's two variable tables: ("embedded" or "separate", the cells, the
    variable names of the first cell)."""
    table = None
    for line in read("README.md").splitlines():
        if re.match(r"^\| variable \| default \|", line):
            table = "embedded"
            continue
        if re.match(r"^\| variable \| used by \| default \|", line):
            table = "separate"
            continue
        if not line.startswith("|"):
            table = None
            continue
        if table is None or re.match(r"^\|\s*-", line):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        yield table, cells, re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])


def readme_variables():
    """(embedded: set, separate: {var: set of services that read it})."""
    embedded, separate = set(), {}
    for table, cells, names in readme_variable_rows():
        if table == "embedded":
            embedded.update(names)
        else:
            users = set()
            for who in re.split(r",\s*", cells[1]):
                users |= {
                    "all": set(SERVICES),
                    "services": {"user-service", "diary-service"},
                    "gateway": {"api-gateway"},
                    "user service": {"user-service"},
                    "diary service": {"diary-service"},
                }.get(who, set())
            for name in names:
                separate[name] = users
    # "and the logging variables of the table below (`LOG_LEVEL`, ...)"
    m = re.search(r"and the logging variables of the table below \(([^)]*)\)", read("README.md"))
    if m:
        embedded.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", m.group(1)))
    return embedded, separate


EMBEDDED_VARS, SERVICE_VARS = readme_variables()


def readme_defaults():
    """{process: {variable: default}}: the default column of README's two tables, for the
    variables each process reads ("unset", "none", "as above" and prose give none)."""
    defaults = {p: {} for p in ["metachat", *SERVICES]}
    for table, cells, names in readme_variable_rows():
        cell = cells[1] if table == "embedded" else cells[2]
        values = [v.strip().strip("`") for v in cell.split(",")] if len(names) > 1 else [cell.strip("`")]
        if len(values) != len(names):
            continue
        for name, value in zip(names, values):
            if not value or value in ("unset", "none", "as above") or re.search(r"[`\s]", value):
                continue
            for process in (["metachat"] if table == "embedded" else sorted(SERVICE_VARS.get(name, ()))):
                defaults[process][name] = value
    return defaults


DEFAULTS = readme_defaults()


def reads(process, name):
    """Whether README says `process` reads the variable `name`."""
    return name in EMBEDDED_VARS if process == "metachat" else process in SERVICE_VARS.get(name, set())


def effective_env(process, *layers):
    """(environment, {variable: where it comes from}) of a process: README's defaults for the
    variables it reads, then each (where, mapping) layer in order, the last one winning."""
    env = dict(DEFAULTS.get(process, {}))
    origin = {k: "README's default" for k in env}
    for where, layer in layers:
        for k, v in (layer or {}).items():
            env[k], origin[k] = str(v), where
    return env, origin


# Addresses a process binds: the unspecified ones (every interface of the container or pod).
UNSPECIFIED = {"0.0.0.0", "::", "[::]"}
# How much longer than SHUTDOWN_TIMEOUT_SECS a process may take to stop: after the drain it closes
# the connections still open and flushes what it holds (platform/tests/grpc.rs: SHUTDOWN_MARGIN).
SHUTDOWN_MARGIN = 5


def duration_secs(text):
    """A Go duration (what Compose writes: 20s, 1m0s, 1m30s, 500ms) in seconds, or None."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(float(n) * units[u] for n, u in parts)


def split_address(value, default_port=None):
    """host:port, http://host:port or host (with default_port) -> (host, port or None)."""
    value = re.sub(r"^[a-z]+://", "", value.strip()).rstrip("/")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return value, default_port
    return host, int(port)


def check_bind(where, process, env, origin, group):
    """A process that reads BIND_ADDRESS listens on every interface of its container or pod."""
    if not reads(process, "BIND_ADDRESS"):
        return
    value = env.get("BIND_ADDRESS")
    why = ("unset, and README gives no default" if value is None else
           "a loopback address: nothing outside the container or pod reaches it"
           if value == "localhost" or value.startswith("127.") or value in ("::1", "[::1]") else
           "a particular address: a container's or pod's own address is not known in advance")
    check(value in UNSPECIFIED, f"{where}: BIND_ADDRESS={value} ({origin.get('BIND_ADDRESS', 'nowhere')})"
          + ("" if value in UNSPECIFIED else f" is {why}; it must be 0.0.0.0"), group)


def shutdown_secs(where, env, origin):
    value = env.get("SHUTDOWN_TIMEOUT_SECS")
    if value is None or not value.isdigit():
        fail(f"{where}: SHUTDOWN_TIMEOUT_SECS={value} ({origin.get('SHUTDOWN_TIMEOUT_SECS', 'README gives no default')})"
             " is not a number of seconds")
        return None
    return int(value)


def check_variables(where, target, names, group=None):
    """Every variable set for image `target` is one README documents for it."""
    if target == "metachat":
        bad = sorted(n for n in names if n not in EMBEDDED_VARS)
        check(not bad, f"{where}: every variable is in README's table of the embedded platform"
              + (f" (not: {', '.join(bad)})" if bad else f" ({len(names)})"), group)
    else:
        bad = sorted(n for n in names if target not in SERVICE_VARS.get(n, set()))
        check(not bad, f"{where}: every variable is one README says the {target} reads"
              + (f" (not: {', '.join(bad)})" if bad else f" ({len(names)})"), group)


# --- The Dockerfile ------------------------------------------------------------------------------


def dockerfile():
    """Stages: name -> {base, env, expose, copies}, in order."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    stages, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            base, name = m.group(1), m.group(2) or f"stage{len(stages)}"
            inherited = stages.get(base)
            current = stages[name] = {
                "base": base,
                "env": dict(inherited["env"]) if inherited else {},
                "expose": set(inherited["expose"]) if inherited else set(),
                "copies": [],
                "runs": [],
            }
        elif word == "ENV":
            for k, v in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", rest):
                current["env"][k] = v.strip('"')
        elif word == "EXPOSE":
            current["expose"] |= {int(p.split("/")[0]) for p in rest.split()}
        elif word == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            current["copies"].append(
                {"from": (re.search(r"--from=(\S+)", rest) or [None, None])[1], "src": parts[:-1]})
        elif word == "RUN":
            current["runs"].append(rest)
    return stages


STAGES = dockerfile()


def dockerignore_included(paths):
    """The paths Docker sends as build context, by .dockerignore's rules (last match wins; a
    pattern matching a parent directory matches its content)."""
    rules = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rules.append((negate, pattern))

    def matches(pattern, path):
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        parts = path.split("/")
        return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))

    included = set()
    for path in paths:
        keep = True
        for negate, pattern in rules:
            if matches(pattern, path):
                keep = negate
        if keep:
            included.add(path)
    return included


def cargo_packages():
    """package name -> (directory, set of binary names)."""
    workspace = tomllib.loads(read("Cargo.toml"))
    packages = {}
    for member in workspace["workspace"]["members"]:
        manifest = tomllib.loads(read(f"{member}/Cargo.toml"))
        name = manifest["package"]["name"]
        bins = {b["name"] for b in manifest.get("bin", [])}
        if not bins and os.path.exists(f"{member}/src/main.rs"):
            bins.add(name)
        if os.path.isdir(f"{member}/src/bin"):
            bins |= {f[:-3] for f in os.listdir(f"{member}/src/bin") if f.endswith(".rs")}
        packages[name] = (member, bins)
    return workspace, packages


def check_dockerfile():
    section("Dockerfile: stages, binaries, build context")
    finals = [s for s in STAGES if s in OUR_TARGETS]
    check(sorted(finals) == sorted(OUR_TARGETS),
          f"a target for each image: {', '.join(sorted(OUR_TARGETS))}")
    check(list(STAGES)[-1] == "metachat", "metachat is the last stage (the default target)")
    workspace, packages = cargo_packages()
    build = " ".join(" ".join(s["runs"]) for s in STAGES.values())
    pairs = re.findall(r"-p\s+(\S+)\s+--bin\s+(\S+)", build)
    check(len(pairs) == 4, f"cargo build names four binaries ({', '.join(b for _, b in pairs)})")
    for package, binary in pairs:
        check(package in packages and binary in packages[package][1],
              f"package {package} has the binary {binary} ({packages.get(package, ('?',))[0]})")
    check("--locked" in build and "--release" in build, "cargo build --release --locked")
    for target in OUR_TARGETS - {"metachat"}:
        check(any(f"/out/{target}" in c["src"][0] for c in STAGES[target]["copies"] if c["src"]),
              f"the {target} image holds the {target} binary")
    for target in ("diary-service", "metachat"):
        check(any(c["from"] == "model" for c in STAGES[target]["copies"]),
              f"the {target} image holds the model, and METACHAT_MODEL_DIR="
              f"{STAGES[target]['env'].get('METACHAT_MODEL_DIR')}")
    for target in ("api-gateway", "user-service"):
        check(not any(c["from"] == "model" for c in STAGES[target]["copies"]),
              f"the {target} image has no model")
    # What the build reads is in the context.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split()
    files = [f for f in files if os.path.exists(f)]
    context = dockerignore_included(files)
    needed = {"Cargo.toml", "Cargo.lock"}
    for stage in STAGES.values():
        for c in stage["copies"]:
            if c["from"] is None:
                needed |= {s for s in c["src"] if s != "."}
    missing = sorted(n for n in needed if n not in context)
    check(not missing, f"the build context (.dockerignore) holds every file COPY names ({', '.join(sorted(needed))})"
          + (f"; missing: {missing}" if missing else ""))
    # Build output and local databases are left out on purpose (.dockerignore's last lines).
    sources = [f for f in files if not f.endswith((".profraw", ".db", ".db-wal", ".db-shm")) and "/target/" not in f]
    member_files = {m: [f for f in sources if f.startswith(m + "/")] for m in workspace["workspace"]["members"]}
    lost = sorted(f for m, fs in member_files.items() for f in fs if f not in context)
    check(not lost, f"the build context holds every file of the {len(member_files)} workspace members"
          + (f"; missing: {lost[:5]}" if lost else f" ({sum(len(v) for v in member_files.values())} files)"))
    leaked = sorted(f for f in context if f.startswith((".git/", "target/", "data/", "docs/", "deploy/"))
                    or f.endswith((".db", ".profraw")))
    check(not leaked, "the build context leaves out .git, target, data, docs, deploy, databases")
    for target in OUR_TARGETS:
        env = STAGES[target]["env"]
        check_variables(f"Dockerfile target {target} ENV", target, set(env) - {"PATH", "SSL_CERT_FILE"})
    ports = {t: int(STAGES[t]["env"]["PORT"]) for t in OUR_TARGETS}
    for target in OUR_TARGETS:
        want = {ports[target]}
        if target == "metachat":
            want |= {int(STAGES[target]["env"][k]) for k in ("USER_SERVICE_PORT", "DIARY_SERVICE_PORT")}
        check(STAGES[target]["expose"] == want, f"{target}: EXPOSE {sorted(STAGES[target]['expose'])} = its ports")
    check_base_images()
    for target in sorted(OUR_TARGETS):
        env, origin = effective_env(target, ("the image's ENV", STAGES[target]["env"]))
        check_bind(f"Dockerfile target {target}", target, env, origin,
                   "every image whose process reads BIND_ADDRESS sets it to 0.0.0.0 (or README's default is)")
    for name, stage in STAGES.items():
        if "BIND_ADDRESS" in stage["env"] and name not in OUR_TARGETS:
            check(stage["env"]["BIND_ADDRESS"] in UNSPECIFIED,
                  f"Dockerfile stage {name}: ENV BIND_ADDRESS={stage['env']['BIND_ADDRESS']} is 0.0.0.0")
    return ports


# Debian's releases, by code name, as the images' tags name them.
DEBIAN = {"buster": 10, "bullseye": 11, "bookworm": 12, "trixie": 13, "forky": 14}


def debian_release(image):
    """The Debian release an image's name or tag says it is built on (rust:1.95-slim-bookworm,
    debian:bookworm-slim, debian:12, gcr.io/distroless/cc-debian12:nonroot), or None."""
    name, _, tag = image.partition("@")[0].rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    m = re.search(r"-debian(\d+)$", name)
    if m:
        return int(m.group(1))
    for codename, number in DEBIAN.items():
        if re.search(rf"(^|[-_.]){codename}($|[-_.])", tag):
            return number
    if name.rsplit("/", 1)[-1] == "debian" and re.match(r"\d+($|[-.])", tag):
        return int(re.match(r"\d+", tag).group(0))
    return None


def external_base(stage):
    """The image a stage starts from, following the stages it is built on."""
    seen = set()
    while stage in STAGES and stage not in seen:
        seen.add(stage)
        stage = STAGES[stage]["base"]
    return stage


def check_base_images():
    section("Dockerfile: base images (Debian release, C library), bind address")
    runtime = {external_base(t) for t in OUR_TARGETS}
    check(len(runtime) == 1, f"the four images share one runtime base ({', '.join(sorted(runtime))})")
    runtime = sorted(runtime)[0]
    # The binaries link glibc, libm and libgcc_s (docs/deployment.md): distroless/cc has the three;
    # distroless/base has no libgcc_s, distroless/static no C library at all.
    m = re.match(r"gcr\.io/distroless/([a-z0-9-]+?)-debian\d+(?::|@|$)", runtime)
    variant = m.group(1) if m else None
    check(variant == "cc", f"the runtime base {runtime} provides glibc and libgcc_s, which the binaries link"
          + ("" if variant == "cc" else
             f": distroless/{variant} has no C library" if variant == "static" else
             f": distroless/{variant} has no libgcc_s" if variant and variant.startswith("base") else
             ": not gcr.io/distroless/cc-debianN, the glibc runtime the binaries are built for"))
    label = re.search(r'org\.opencontainers\.image\.base\.name="([^"]+)"', read("Dockerfile"))
    check(label and label.group(1) == runtime, f"the image label base.name is the runtime base ({label.group(1) if label else None})")
    release = debian_release(runtime)
    check(release is not None, f"the runtime base {runtime} names its Debian release (Debian {release})")
    # The stage that compiles: its glibc must be no newer than the runtime's, so the same release.
    builders = [n for n, s in STAGES.items() if any("cargo build" in r for r in s["runs"])]
    for name in builders:
        base = external_base(name)
        got = debian_release(base)
        check(got is not None and got == release,
              f"the {name} stage's base {base} is on the runtime's Debian release ({release})"
              + ("" if got == release else
                 ": it names no Debian release (a floating tag follows Debian's newest, whose glibc may be newer)"
                 if got is None else
                 f": it is Debian {got}; binaries linked against its glibc may need symbols the runtime's lacks"
                 if got > (release or 0) else f": it is Debian {got}"))
    # The stages copied into the images that only provide files (the model, the data directory):
    # their release does not reach the images' code, but is pinned, not a floating tag.
    copied = {c["from"] for t in OUR_TARGETS | {"runtime"} if t in STAGES for c in STAGES[t]["copies"] if c["from"]}
    for name in sorted(copied - set(builders) - set(OUR_TARGETS)):
        if name not in STAGES:
            continue
        base = external_base(name)
        got = debian_release(base)
        runs_binaries = any(re.match(r"/(usr/(local/)?)?(s?bin|lib(64|exec)?)(/|$)", src) for t in OUR_TARGETS | {"runtime"}
                            if t in STAGES for c in STAGES[t]["copies"] if c["from"] == name for src in c["src"])
        if runs_binaries:
            check(got == release, f"the {name} stage's base {base} is Debian {got}, the runtime's Debian {release}"
                  " (it provides programs or libraries to the images)")
        else:
            check(got is not None, f"the {name} stage (files only) is built on a named Debian release ({base}"
                  + (f": Debian {got})" if got else "): it names none, a floating tag"))


# --- Compose ----------------------------------------------------------------------------------

COMBINATIONS = {}
for name in sorted(os.listdir(RESOLVED)):
    if name.endswith(".json"):
        COMBINATIONS[name[:-5]] = json.loads(read(os.path.join(RESOLVED, name)))

HOST_PATHS = {"/var/lib/docker/containers", "/var/run/docker.sock"}


def agent_port(value):
    m = re.search(r"-javaagent:\S*jmx_prometheus_javaagent[^=]*=(?:[^:]+:)?(\d+):(\S+)", value or "")
    return (int(m.group(1)), m.group(2)) if m else None


def listen_ports(service):
    ports = {int(p["target"]) for p in service.get("ports", [])}
    ports |= {int(p) for p in service.get("expose", [])}
    env = service.get("environment") or {}
    target = (service.get("build") or {}).get("target")
    if target in STAGES:
        ports |= STAGES[target]["expose"]
    for key in ("PORT", "USER_SERVICE_PORT", "DIARY_SERVICE_PORT"):
        if target and env.get(key):
            ports.add(int(env[key]))
    for value in env.values():
        agent = agent_port(value)
        if agent:
            ports.add(agent[0])
    for arg in service.get("command") or []:
        m = re.search(r"--web\.listen-address=\S*:(\d+)", arg)
        if m:
            ports.add(int(m.group(1)))
    image = service.get("image", "")
    for known, port in (("prom/prometheus", 9090), ("prom/alertmanager", 9093), ("grafana/grafana", 3000)):
        if image.startswith(known):
            ports.add(port)
    return ports


def names_of(project):
    names = {}
    for name, service in project["services"].items():
        names[name] = name
        for net in (service.get("networks") or {}).values():
            for alias in (net or {}).get("aliases") or []:
                names[alias] = name
    return names


def image_repo(service):
    """postgres:15-bookworm -> postgres, apache/kafka:4.4.0 -> kafka."""
    image = (service.get("image") or "").split("@")[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":")[0]


def kafka_listeners(env):
    """({port: listener name}, {listener name: (advertised host, port)}) of a Kafka container."""
    def parse(value):
        out = {}
        for item in (value or "").split(","):
            m = re.match(r"\s*([A-Za-z0-9_]+)://([^:]*):(\d+)\s*$", item)
            if m:
                out[m.group(1)] = (m.group(2), int(m.group(3)))
        return out
    listeners = parse(env.get("KAFKA_LISTENERS"))
    return {port: name for name, (_, port) in listeners.items()}, parse(env.get("KAFKA_ADVERTISED_LISTENERS"))


def compose_endpoints(combo, project, name, process, env, origin):
    """Each address a MetaChat process is given names the right service of the project, on the
    port that service listens on."""
    names = names_of(project)
    services = project["services"]
    by_target = {(s.get("build") or {}).get("target"): n for n, s in services.items() if s.get("build")}
    where = f"{combo}: {name}"
    for var in sorted(v for v in env if v.endswith("_SERVICE_ADDRESS")):
        want = var[: -len("_SERVICE_ADDRESS")].lower().replace("_", "-") + "-service"
        value = env[var]
        host, port = split_address(value)
        owner = names.get(host)
        peer = by_target.get(want)
        peer_port = None
        if peer:
            peer_env, _ = effective_env(want, ("image", STAGES.get(want, {}).get("env")), ("compose", services[peer].get("environment")))
            peer_port = int(peer_env["PORT"]) if peer_env.get("PORT", "").isdigit() else None
        why = ("" if owner == peer and peer and port == peer_port else
               f": no {want} in the project" if peer is None else
               f": {host} is no service of the project" if owner is None else
               f": {host} is the service {owner}, not {peer} ({want})" if owner != peer else
               f": no port (the {want} listens on {peer_port})" if port is None else
               f": the {want} listens on {peer_port}, not {port}")
        check(not why, f"{where}: {var}={value} ({origin.get(var)}) is {peer}:{peer_port}{why}",
              "every *_SERVICE_ADDRESS names the service it is for, on the port it listens on")
    if env.get("DB_HOST"):
        for needed in ("KAFKA_BOOTSTRAP_SERVERS", "CASSANDRA_HOSTS"):
            check(bool(env.get(needed)), f"{where}: DB_HOST is set (the production wiring), so is {needed}",
                  "every process on the production wiring (DB_HOST) has KAFKA_BOOTSTRAP_SERVERS and CASSANDRA_HOSTS")
        host, port = env["DB_HOST"], env.get("DB_PORT", "")
        owner = names.get(host)
        pg_port = int((services[owner].get("environment") or {}).get("PGPORT", 5432)) if owner else None
        ok_ = owner is not None and image_repo(services[owner]) == "postgres" and port == str(pg_port)
        check(ok_, f"{where}: DB_HOST={host} DB_PORT={port} ({origin.get('DB_PORT')}) is the PostgreSQL service on {pg_port}"
              + ("" if ok_ else f": {host} is no service of the project" if owner is None else
                 f": {owner} runs {services[owner].get('image')}, not postgres" if image_repo(services[owner]) != "postgres" else
                 f": PostgreSQL listens on {pg_port}, not {port}"),
              "DB_HOST and DB_PORT name the PostgreSQL service and the port it listens on")
    for server in filter(None, (env.get("KAFKA_BOOTSTRAP_SERVERS") or "").split(",")):
        host, port = split_address(server)
        owner = names.get(host)
        kenv = (services[owner].get("environment") or {}) if owner else {}
        listeners, advertised = kafka_listeners(kenv)
        listener = listeners.get(port)
        adv = advertised.get(listener)
        ok_ = owner is not None and image_repo(services[owner]) == "kafka" and listener is not None \
            and adv is not None and names.get(adv[0]) == owner and adv[1] == port
        check(ok_, f"{where}: KAFKA_BOOTSTRAP_SERVERS {server} is Kafka's {listener} listener, advertised as "
              f"{adv[0] + ':' + str(adv[1]) if adv else None}"
              + ("" if ok_ else f": {host} is no service of the project" if owner is None else
                 f": {owner} runs {services[owner].get('image')}, not Kafka" if image_repo(services[owner]) != "kafka" else
                 f": Kafka listens on {', '.join(str(p) for p in sorted(listeners))}, not {port}" if listener is None else
                 f": the broker tells clients to reconnect to {adv[0]}:{adv[1]}, which the containers cannot reach"
                 if adv else f": the listener {listener} is not advertised"),
              "KAFKA_BOOTSTRAP_SERVERS names a Kafka listener of the project that advertises that same address")
    for contact in filter(None, (env.get("CASSANDRA_HOSTS") or "").split(",")):
        host, port = split_address(contact, 9042)
        owner = names.get(host)
        ok_ = owner is not None and image_repo(services[owner]) == "cassandra" and port == 9042
        check(ok_, f"{where}: CASSANDRA_HOSTS {contact} is the Cassandra service's CQL port 9042"
              + ("" if ok_ else f": {host} is no service of the project" if owner is None else
                 f": {owner} runs {services[owner].get('image')}, not Cassandra" if image_repo(services[owner]) != "cassandra" else
                 f": its CQL port is 9042, not {port}"),
              "CASSANDRA_HOSTS names the Cassandra service and its CQL port (9042)")


def check_compose(ports):
    section("Compose files: images, variables, mounts, ports (every combination)")
    for combo, project in COMBINATIONS.items():
        check(project.get("name") == "metachat", f"{combo}: project name metachat (one network for every file)",
              "every file names the project metachat (one network)")
        published = {}
        for name, service in project["services"].items():
            target = (service.get("build") or {}).get("target")
            if service.get("build"):
                check(target in STAGES, f"{combo}: {name} builds target {target!r}, a stage of the Dockerfile",
                      "every build target is a stage of the Dockerfile")
            if target in OUR_TARGETS:
                env = service.get("environment") or {}
                check_variables(f"{combo}: {name}", target, set(env),
                                "every variable set for a MetaChat image is one README documents for that process")
                check(service.get("labels", {}).get("metachat.logs") == "json",
                      f"{combo}: {name} is labelled metachat.logs=json (Filebeat ships its logs)",
                      "every MetaChat container is labelled metachat.logs=json, for Filebeat")
                check((service.get("logging") or {}).get("driver") == "json-file",
                      f"{combo}: {name} logs with the json-file driver (what Filebeat reads)",
                      "every MetaChat container logs with the json-file driver Filebeat reads")
                port = int(env.get("PORT") or ports[target])
                check(port == ports[target], f"{combo}: {name} listens on {port}, the image's port",
                      "every MetaChat container listens on its image's port")
                env, origin = effective_env(target, ("the image's ENV", STAGES[target]["env"]), ("compose", env))
                check_bind(f"{combo}: {name}", target, env, origin,
                           "every MetaChat container that reads BIND_ADDRESS listens on 0.0.0.0")
                compose_endpoints(combo, project, name, target, env, origin)
                shutdown = shutdown_secs(f"{combo}: {name}", env, origin)
                grace = service.get("stop_grace_period", "10s")
                secs = duration_secs(grace)
                if shutdown is not None:
                    good = secs is not None and secs >= shutdown + SHUTDOWN_MARGIN
                    check(good,
                          f"{combo}: {name} stop_grace_period {grace} {'>=' if good else 'is less than'} SHUTDOWN_TIMEOUT_SECS "
                          f"{shutdown} s ({origin.get('SHUTDOWN_TIMEOUT_SECS')}) + {SHUTDOWN_MARGIN} s"
                          + ("" if good else ": Docker sends SIGKILL before the drain ends"),
                          f"every MetaChat container's stop_grace_period exceeds its SHUTDOWN_TIMEOUT_SECS by "
                          f"{SHUTDOWN_MARGIN} s at least")
            for volume in service.get("volumes", []):
                if volume["type"] != "bind":
                    continue
                source = volume["source"]
                if source in HOST_PATHS:
                    check(volume.get("read_only"), f"{combo}: {name} mounts the host's {source} read-only",
                          "host paths (Docker's logs and socket, for Filebeat) are mounted read-only")
                    continue
                rel = os.path.relpath(source, ROOT)
                check(not rel.startswith("..") and os.path.exists(rel),
                      f"{combo}: {name} mounts {rel}, which exists in the repository",
                      "every file or directory a compose file mounts exists in the repository")
                check(volume.get("read_only", False), f"{combo}: {name} mounts {rel} read-only",
                      "every repository path is mounted read-only")
            for port in service.get("ports", []):
                key = (port.get("host_ip", "0.0.0.0"), port["published"])
                check(key not in published, f"{combo}: host port {port['published']} is published once "
                      f"({name}{', ' + published[key] if key in published else ''})",
                      "no host port is published twice in a combination")
                published[key] = name
            for dep, cond in (service.get("depends_on") or {}).items():
                check(dep in project["services"], f"{combo}: {name} depends on {dep}, a service of the project",
                      "every depends_on names a service of the combination")
                if cond.get("condition") == "service_healthy":
                    check("healthcheck" in project["services"].get(dep, {}),
                          f"{combo}: {dep}, awaited healthy by {name}, has a healthcheck",
                          "every service awaited as healthy has a healthcheck")


def prometheus_targets(path):
    config = yaml.safe_load(read(path))
    targets = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += [(job["job_name"], t) for t in static["targets"]]
    for am in config.get("alerting", {}).get("alertmanagers", []):
        for static in am.get("static_configs", []):
            targets += [("alertmanager", t) for t in static["targets"]]
    return targets


def check_prometheus():
    section("Prometheus, Grafana, Alertmanager: targets and mounts")
    # The production wiring's configuration, and the embedded platform's (PROMETHEUS_CONFIG).
    for wiring, path in (("infrastructure", "config/prometheus/prometheus.yml"),
                         ("simple", "config/prometheus/prometheus-embedded.yml")):
        combos = [c for c in COMBINATIONS if wiring in c and "monitoring" in c]
        check(bool(combos), f"a combination of {wiring} with the monitoring stack is checked")
        for combo in combos:
            project = COMBINATIONS[combo]
            names = names_of(project)
            for job, target in prometheus_targets(path):
                host, port = target.rsplit(":", 1)
                service = names.get(host)
                check(service is not None and int(port) in listen_ports(project["services"][service]),
                      f"{combo}: {os.path.basename(path)} target {target} ({job}) is a service listening on {port}")
    monitoring = read("docker-compose.monitoring.yml")
    check("--config.file=/etc/prometheus/${PROMETHEUS_CONFIG:-prometheus.yml}" in monitoring,
          "Prometheus reads the configuration PROMETHEUS_CONFIG names (prometheus.yml by default)")
    # Grafana's provisioning.
    datasource = yaml.safe_load(read("config/grafana/provisioning/datasources/prometheus.yml"))
    url = datasource["datasources"][0]["url"]
    m = re.match(r"https?://([^:/]+):(\d+)", url)
    provider = yaml.safe_load(read("config/grafana/provisioning/dashboards/metachat.yml"))
    path = provider["providers"][0]["options"]["path"]
    for combo in [c for c in COMBINATIONS if "monitoring" in c][:1]:
        project = COMBINATIONS[combo]
        names = names_of(project)
        check(m and names.get(m.group(1)) and int(m.group(2)) in listen_ports(project["services"][names[m.group(1)]]),
              f"{combo}: Grafana's data source {url} is the prometheus service")
        mounts = {v["target"]: os.path.relpath(v["source"], ROOT) for v in project["services"]["grafana"]["volumes"]
                  if v["type"] == "bind"}
        check(mounts.get(path) == "config/grafana/dashboards",
              f"{combo}: the dashboard provider's path {path} is config/grafana/dashboards")
        check(mounts.get("/etc/grafana/provisioning") == "config/grafana/provisioning",
              f"{combo}: /etc/grafana/provisioning is config/grafana/provisioning")
        # Alertmanager's secrets are where the template reads them.
        template = read("config/alertmanager/alertmanager.yml.tmpl")
        wanted = set(re.findall(r"(/etc/alertmanager/secrets/[a-z-]+)", template))
        given = {s["target"] for s in project["services"]["alertmanager"].get("secrets", [])}
        check(wanted == given, f"{combo}: Alertmanager gets the secret files its template reads ({len(wanted)})")
        readme = read("config/alertmanager/README.md")
        documented = set(re.findall(r"\| `([A-Z_]+)` \|", readme))
        env = set(project["services"]["alertmanager"].get("environment") or {})
        check(env == documented, f"{combo}: Alertmanager's variables are config/alertmanager/README.md's ({len(env)})")


def check_jmx():
    section("Kafka and Cassandra: the JMX exporter agent")
    versions = set()
    for svc in ("kafka", "cassandra"):
        pom = read(f"scripts/infra/{svc}/pom.xml")
        m = re.search(r"<artifactId>jmx_prometheus_javaagent</artifactId><version>([^<]+)</version>", pom)
        versions.add(m.group(1) if m else None)
    for combo, project in [(c, p) for c, p in COMBINATIONS.items() if "kafka" in p["services"]][:1]:
        init = project["services"]["jmx-exporter"]
        jar = init["environment"]["JAR"]
        check(re.fullmatch(r"[0-9a-f]{64}", init["environment"]["JAR_SHA256"]) is not None,
              f"{combo}: the agent jar's SHA-256 is pinned")
        check(any(f"jmx_prometheus_javaagent-{v}.jar" in jar for v in versions if v) and len(versions) == 1,
              f"{combo}: the agent is version {'/'.join(sorted(v or '?' for v in versions))}, as in scripts/infra/*/pom.xml")
        check(init["environment"]["JAR_URL"].endswith("/" + os.path.basename(jar)), f"{combo}: the URL fetches {os.path.basename(jar)}")
        for svc, var in (("kafka", "KAFKA_OPTS"), ("cassandra", "JVM_EXTRA_OPTS")):
            service = project["services"][svc]
            value = service["environment"][var]
            port, rules = agent_port(value)
            mounts = {v["target"]: v for v in service["volumes"]}
            rule = mounts.get(rules)
            check(rule is not None and os.path.relpath(rule["source"], ROOT) == f"scripts/infra/{svc}/jmx-exporter.yml"
                  and rule.get("read_only"),
                  f"{combo}: {svc}'s agent reads scripts/infra/{svc}/jmx-exporter.yml (read-only) on port {port}")
            jar_dir = os.path.dirname(jar)
            check(f"-javaagent:{jar}=" in value and jar_dir in mounts and mounts[jar_dir]["type"] == "volume"
                  and mounts[jar_dir].get("read_only")
                  and mounts[jar_dir]["source"] == init["volumes"][0]["source"],
                  f"{combo}: {svc} loads the jar the jmx-exporter service verified")
            check(service["depends_on"].get("jmx-exporter", {}).get("condition") == "service_completed_successfully",
                  f"{combo}: {svc} starts after the jar is verified")


def check_logging():
    section("Logs: Filebeat, Logstash, Elasticsearch")
    template = json.loads(read("config/logging/elasticsearch-index-template.json"))
    pipeline = read("config/logstash/pipeline/metachat.conf")
    indices = re.findall(r'index\s*=>\s*"([^"]+)"', pipeline)
    check("metachat-logs-%{+YYYY.MM.dd}" in indices, "Logstash writes the daily index metachat-logs-%{+YYYY.MM.dd}")
    for index in indices:
        prefix = index.split("%{")[0]
        check(any(fnmatch.fnmatch(prefix + "2026.01.01", p) for p in template["index_patterns"]),
              f"the index template covers {index}")
    props = template["template"]["mappings"]["properties"]
    for field, kind in (("@timestamp", "date"), ("level", "keyword"), ("service", "keyword"),
                        ("environment", "keyword"), ("message", "text"), ("fields", "flattened"),
                        ("request_id", "keyword"), ("trace_id", "keyword"), ("span_id", "keyword"),
                        ("tags", "keyword")):
        check(props.get(field, {}).get("type") == kind, f"the index template maps {field} as {kind}")
    check(template["template"]["settings"].get("index.lifecycle.name") == "metachat-logs"
          and "_ilm/policy/metachat-logs" in read("config/logging/elasticsearch-setup.sh"),
          "the indices follow the lifecycle policy metachat-logs, which elasticsearch-setup.sh installs")
    for tag in ("metachat_unparsed",):
        check(tag in pipeline, f"lines that are not JSON records are tagged {tag} and written, not dropped")
    check(re.search(r'match\s*=>\s*\["timestamp", "ISO8601"\]', pipeline) is not None, "timestamp becomes @timestamp")
    beats = re.search(r"beats\s*\{\s*port\s*=>\s*(\d+)", pipeline)
    filebeat = yaml.safe_load(read("config/logging/filebeat.yml"))
    hosts = filebeat["output.logstash"]["hosts"]
    check(beats and all(h.rstrip("}").endswith(":" + beats.group(1)) for h in hosts),
          f"Filebeat sends to Logstash's beats port {beats.group(1) if beats else '?'}")
    condition = filebeat["filebeat.autodiscover"]["providers"][0]["templates"][0]["condition"]["equals"]
    check(condition == {"docker.container.labels.metachat_logs": "json"},
          "Filebeat picks the containers labelled metachat.logs=json (dedotted)")
    settings = yaml.safe_load(read("config/logstash/logstash.yml"))
    check(settings.get("dead_letter_queue.enable") is True, "Logstash keeps refused documents in its dead letter queue")
    for combo, project in COMBINATIONS.items():
        if "logstash" not in project["services"]:
            continue
        ls = {v["target"]: os.path.relpath(v["source"], ROOT) for v in project["services"]["logstash"]["volumes"]
              if v["type"] == "bind"}
        check(ls.get("/usr/share/logstash/pipeline") == "config/logstash/pipeline"
              and ls.get("/usr/share/logstash/config/logstash.yml") == "config/logstash/logstash.yml",
              f"{combo}: Logstash runs config/logstash")
        env = project["services"]["logstash"]["environment"]
        used = set(re.findall(r"\$\{([A-Z_]+)(?::[^}]*)?\}", pipeline))
        check(used <= set(env), f"{combo}: Logstash has every variable its pipeline reads ({', '.join(sorted(used))})")
        fb = {v["target"]: v for v in project["services"]["filebeat"]["volumes"]}
        check(os.path.relpath(fb["/usr/share/filebeat/filebeat.yml"]["source"], ROOT) == "config/logging/filebeat.yml",
              f"{combo}: Filebeat runs config/logging/filebeat.yml")
        ours = [n for n, s in project["services"].items() if (s.get("build") or {}).get("target") in OUR_TARGETS]
        check(bool(ours), f"{combo}: Filebeat has MetaChat containers to ship ({', '.join(ours)})")


# --- Kubernetes -------------------------------------------------------------------------------


def pod_env(container, docs):
    """The environment the container's spec gives it, in order (envFrom ConfigMaps, then env),
    with where each value comes from; a secret is a placeholder."""
    env, origin = {}, {}
    for src in container.get("envFrom", []):
        name = src.get("configMapRef", {}).get("name")
        for k, v in (docs.get(("ConfigMap", name)) or {}).get("data", {}).items():
            env[k], origin[k] = str(v), f"ConfigMap {name}"
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]], origin[e["name"]] = str(e["value"]), "the Deployment's env"
        else:
            env[e["name"]], origin[e["name"]] = "<secret>", "a Secret"
    return env, origin


def service_target(svc_port, container):
    """The container port a Service port forwards to (by number or by name)."""
    target = svc_port.get("targetPort", svc_port["port"])
    for p in container.get("ports", []):
        if target in (p["containerPort"], p.get("name")):
            return p["containerPort"]
    return None


def k8s_endpoints(service, env, origin, docs, namespace):
    """Each *_SERVICE_ADDRESS of a pod names the Service of the right Deployment, on the Service
    port that forwards to the port that Deployment's process listens on."""
    for var in sorted(v for v in env if v.endswith("_SERVICE_ADDRESS")):
        want = var[: -len("_SERVICE_ADDRESS")].lower().replace("_", "-") + "-service"
        value = env[var]
        host, port = split_address(value)
        labels = host.split(".")
        name = labels[0]
        svc = docs.get(("Service", name))
        peer = docs.get(("Deployment", want))
        why = ""
        if len(labels) > 1 and (labels[1] != namespace or labels[2:] not in ([], ["svc"], ["svc", "cluster", "local"])):
            why = f": {host} is not a Service of the namespace {namespace}"
        elif svc is None:
            why = f": no Service {name} in deploy/k8s"
        elif peer is None:
            why = f": no Deployment {want}"
        else:
            pod_labels = peer["spec"]["template"]["metadata"]["labels"]
            container = peer["spec"]["template"]["spec"]["containers"][0]
            peer_env = {e["name"]: e.get("value") for e in container.get("env", [])}
            listens = int(peer_env.get("PORT") or STAGES.get(want, {}).get("env", {}).get("PORT", 0))
            svc_port = next((p for p in svc["spec"]["ports"] if p["port"] == port), None)
            if not svc["spec"].get("selector") or not svc["spec"]["selector"].items() <= pod_labels.items():
                why = f": the Service {name} does not select the {want} pods"
            elif svc_port is None:
                why = f": the Service {name} has no port {port} (it has {', '.join(str(p['port']) for p in svc['spec']['ports'])})"
            elif service_target(svc_port, container) != listens:
                why = f": the Service's port {port} forwards to {service_target(svc_port, container)}, the {want} listens on {listens}"
        check(not why, f"{service} Deployment: {var}={value} ({origin.get(var)}) is the Service of the {want} pods, on their port{why}",
              "every *_SERVICE_ADDRESS of a pod is the Service of the right Deployment, on the port its process listens on")


def check_k8s_stores(data):
    """PostgreSQL, Kafka and Cassandra are not in deploy/k8s: their addresses follow the Service
    names and ports that CloudNativePG, Strimzi and K8ssandra give a cluster (docs/deployment.md)."""
    db_host, db_port = data.get("DB_HOST", ""), data.get("DB_PORT", DEFAULTS["user-service"].get("DB_PORT"))
    good = re.fullmatch(r"[a-z0-9-]+-rw", db_host) is not None and db_port == "5432"
    check(good, f"ConfigMap DB_HOST={db_host} DB_PORT={db_port}: CloudNativePG's read-write Service <cluster>-rw, port 5432"
          + ("" if good else ": not the primary's Service, or not its port"))
    for server in filter(None, data.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")):
        host, port = split_address(server)
        good = re.fullmatch(r"[a-z0-9-]+-kafka-bootstrap", host) is not None and port == 9092
        check(good, f"ConfigMap KAFKA_BOOTSTRAP_SERVERS {server}: Strimzi's bootstrap Service <cluster>-kafka-bootstrap, "
              "its plain listener 9092" + ("" if good else ": not that Service, or not that port"))
    dcs = set(re.findall(r"'([A-Za-z0-9_-]+)'\s*:\s*\d+", data.get("CASSANDRA_REPLICATION", ""))) - {"replication_factor"}
    for contact in filter(None, data.get("CASSANDRA_HOSTS", "").split(",")):
        host, port = split_address(contact, 9042)
        m = re.fullmatch(r"[a-z0-9-]+-([a-z0-9]+)-service", host)
        good = m is not None and port == 9042 and m.group(1) in dcs
        check(good, f"ConfigMap CASSANDRA_HOSTS {contact}: K8ssandra's Service <cluster>-<dc>-service of a datacenter "
              f"CASSANDRA_REPLICATION replicates to ({', '.join(sorted(dcs))}), CQL port 9042"
              + ("" if good else f": {host}:{port} is not"))
    deployment_md = read("docs/deployment.md")
    for key in ("DB_HOST", "KAFKA_BOOTSTRAP_SERVERS", "CASSANDRA_HOSTS"):
        check(f"`{data.get(key)}`" in deployment_md, f"docs/deployment.md states the ConfigMap's {key} ({data.get(key)})")


# Files of deploy/k8s that are not Kubernetes manifests: the Prometheus scrape configuration.
NOT_MANIFESTS = {"prometheus-scrape.yml"}


def check_kubernetes(ports):
    section("Kubernetes manifests: kustomization, references, probes, variables")
    base = "deploy/k8s"
    kustomization = yaml.safe_load(read(f"{base}/kustomization.yaml"))
    listed = kustomization["resources"]
    present = sorted(f for f in os.listdir(base) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml"
                     and f not in NOT_MANIFESTS)
    for resource in listed:
        check(os.path.exists(f"{base}/{resource}"), f"kustomization lists {resource}, which exists")
    unlisted = sorted(set(present) - set(listed))
    check(not unlisted, f"kustomization lists every manifest ({len(present)})" + (f"; not: {unlisted}" if unlisted else ""))
    docs = {}
    for f in present:
        for doc in yaml.safe_load_all(read(f"{base}/{f}")):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    version = tomllib.loads(read("Cargo.toml"))["workspace"]["package"]["version"]
    images = {i["name"]: i for i in kustomization.get("images", [])}
    secret_keys = set(re.search(r"SECRET_KEYS=\(([^)]*)\)", read(f"{base}/deploy.sh")).group(1).split())
    used_secret_keys = set()
    configmaps = {n for k, n in docs if k == "ConfigMap"}
    config = next(d for (k, _), d in docs.items() if k == "ConfigMap")
    bad = sorted(k for k in config["data"] if k not in SERVICE_VARS)
    check(not bad, f"every key of the ConfigMap is a variable README documents ({len(config['data'])})"
          + (f"; not: {bad}" if bad else ""))
    protos = {}
    for name in ("user", "diary"):
        text = read(f"proto/metachat/{name}.proto")
        protos[f"{name}-service"] = re.search(r"^package\s+([\w.]+);", text, re.M).group(1) + "." + \
            re.search(r"^service\s+(\w+)", text, re.M).group(1)
    pod_envs = {}
    for service in SERVICES:
        deployment = docs.get(("Deployment", service))
        if not check(deployment is not None, f"a Deployment {service}"):
            continue
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        image = container["image"]
        check(image in images and images[image].get("newTag") == version,
              f"{service}: image {image} is in kustomization's images, tag {images.get(image, {}).get('newTag')} = Cargo.toml's {version}")
        check(deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items(),
              f"{service}: the selector matches the pod labels")
        psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
        check(psc.get("runAsNonRoot") and psc.get("runAsUser") == 65532 and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
              and csc.get("readOnlyRootFilesystem") and csc.get("allowPrivilegeEscalation") is False
              and csc.get("capabilities", {}).get("drop") == ["ALL"],
              f"{service}: non-root 65532, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp")
        # The process's environment: README's defaults, the image's ENV, then the pod spec's.
        env_k8s, origin = effective_env(service, ("the image's ENV", STAGES.get(image.rsplit("/", 1)[-1], {}).get("env")))
        spec_env, spec_origin = pod_env(container, docs)
        env_k8s.update(spec_env)
        origin.update(spec_origin)
        shutdown = shutdown_secs(f"{service} Deployment", env_k8s, origin)
        pre_stop_hook = container.get("lifecycle", {}).get("preStop")
        pre_stop = (pre_stop_hook or {}).get("sleep", {}).get("seconds", 0 if not pre_stop_hook else None)
        check(pre_stop is not None, f"{service}: the preStop hook's duration is known ({pre_stop} s: a sleep action, or none)")
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        if shutdown is not None and pre_stop is not None:
            good = tgps >= pre_stop + shutdown + SHUTDOWN_MARGIN
            check(good, f"{service}: terminationGracePeriodSeconds {tgps} {'>=' if good else 'is less than'} preStop {pre_stop} s"
                  f" + SHUTDOWN_TIMEOUT_SECS {shutdown} s ({origin.get('SHUTDOWN_TIMEOUT_SECS')}) + {SHUTDOWN_MARGIN} s"
                  + ("" if good else ": the kubelet sends SIGKILL before the drain ends"))
        check_bind(f"{service} Deployment", service, env_k8s, origin,
                   "every Deployment whose process reads BIND_ADDRESS listens on 0.0.0.0")
        pod_envs[service] = (env_k8s, origin)
        check(all(k in container.get("resources", {}).get("requests", {}) for k in ("cpu", "memory"))
              and "memory" in container.get("resources", {}).get("limits", {}),
              f"{service}: CPU and memory requests, a memory limit")
        env = {e["name"]: e for e in container.get("env", [])}
        check_variables(f"{service} Deployment env", service, set(env))
        for e in env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used_secret_keys.add(ref["key"])
                check(ref["name"] == "metachat-secrets", f"{service}: {e['name']} from the Secret metachat-secrets")
        for src in container.get("envFrom", []):
            check(src.get("configMapRef", {}).get("name") in configmaps, f"{service}: envFrom the ConfigMap {src.get('configMapRef', {}).get('name')}")
        port = container["ports"][0]["containerPort"]
        check(port == ports[service] and env["PORT"]["value"] == str(port),
              f"{service}: containerPort {port} = PORT = the image's port")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == str(port)
              and annotations.get("prometheus.io/path") == "/metrics",
              f"{service}: prometheus.io annotations scrape :{port}/metrics")
        live, ready = container.get("livenessProbe", {}), container.get("readinessProbe", {})
        if service == "api-gateway":
            check(live.get("httpGet", {}).get("path") == "/health/live" and ready.get("httpGet", {}).get("path") == "/health/ready",
                  f"{service}: liveness GET /health/live, readiness GET /health/ready")
        else:
            check(live.get("grpc") == {"port": port, "service": ""},
                  f"{service}: liveness is gRPC health of the server (service \"\") on {port}")
            check(ready.get("grpc") == {"port": port, "service": protos[service]},
                  f"{service}: readiness is gRPC health of {protos[service]} (proto/metachat)")
        svc = docs.get(("Service", service))
        if check(svc is not None, f"{service}: a Service of that name"):
            check(svc["spec"].get("type", "ClusterIP") == "ClusterIP"
                  and svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
                  and svc["spec"]["ports"][0]["port"] == port
                  and svc["spec"]["ports"][0]["targetPort"] in (port, container["ports"][0]["name"]),
                  f"{service}: the ClusterIP Service selects its pods and forwards {port}")
    namespace = kustomization.get("namespace")
    for service, (env_k8s, origin) in pod_envs.items():
        k8s_endpoints(service, env_k8s, origin, docs, namespace)
    check_k8s_stores(config["data"])
    check(used_secret_keys == secret_keys, f"deploy.sh creates exactly the Secret keys the Deployments read ({', '.join(sorted(secret_keys))})")
    hpa = docs.get(("HorizontalPodAutoscaler", "api-gateway"))
    check(hpa is not None and hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == "api-gateway"
          and hpa["spec"]["minReplicas"] >= 2, "an autoscaling/v2 HPA scales the api-gateway Deployment, 2 replicas at least")
    check("replicas" not in docs[("Deployment", "api-gateway")]["spec"], "the gateway's replica count is left to its HPA")
    others = [n for k, n in docs if k == "HorizontalPodAutoscaler" and n != "api-gateway"]
    check(not others, "no other HPA")
    pdb = docs.get(("PodDisruptionBudget", "api-gateway"))
    check(pdb is not None and pdb["spec"]["selector"]["matchLabels"].items()
          <= docs[("Deployment", "api-gateway")]["spec"]["template"]["metadata"]["labels"].items(),
          "a PodDisruptionBudget covers the gateway's pods")
    check(kustomization.get("namespace") == "metachat" and ("Namespace", "metachat") in docs, "namespace metachat")


# --- Prometheus: relabelling, the Kubernetes scrape configuration, the alerts' jobs ----------------


class RelabelError(Exception):
    pass


def go_expand(template, match):
    """Go's regexp Expand, as Prometheus applies `replacement`: $1, ${1}, $name, ${name}, $$; a
    name is the longest run of letters, digits and _ ($1x is the group "1x": empty)."""
    out, i = "", 0
    while i < len(template):
        c = template[i]
        if c != "$" or i + 1 == len(template):
            out += c
            i += 1
            continue
        if template[i + 1] == "$":
            out += "$"
            i += 2
            continue
        m = re.match(r"\{(\w+)\}|(\w+)", template[i + 1:])
        if not m:
            out += c
            i += 1
            continue
        name = m.group(1) or m.group(2)
        i += 1 + m.end()
        try:
            out += (match.group(int(name)) if name.isdigit() else match.group(name)) or ""
        except (IndexError, re.error):
            pass
    return out


def relabel(labels, configs):
    """Prometheus's relabelling of one target (the actions the configurations here use); None when
    the target is dropped."""
    labels = dict(labels)
    for cfg in configs or []:
        action = cfg.get("action", "replace").lower()
        regex = re.compile(r"(?:" + str(cfg.get("regex", "(.*)")) + r")\Z")
        value = cfg.get("separator", ";").join(labels.get(n, "") for n in cfg.get("source_labels", []))
        if action in ("keep", "drop"):
            if (regex.match(value) is not None) != (action == "keep"):
                return None
        elif action == "replace":
            m = regex.match(value)
            if m:
                target = go_expand(cfg["target_label"], m)
                result = go_expand(str(cfg.get("replacement", "$1")), m)
                if result:
                    labels[target] = result
                else:
                    labels.pop(target, None)
        elif action in ("lowercase", "uppercase"):
            labels[cfg["target_label"]] = value.lower() if action == "lowercase" else value.upper()
        elif action == "labelmap":
            for name, v in list(labels.items()):
                m = regex.match(name)
                if m:
                    labels[go_expand(str(cfg.get("replacement", "$1")), m)] = v
        elif action in ("labeldrop", "labelkeep"):
            labels = {n: v for n, v in labels.items() if (regex.match(n) is not None) == (action == "labelkeep")}
        else:
            raise RelabelError(f"the action {action} is not simulated here")
    return labels


def scrape_target(job, labels):
    """The target's final labels (job, instance, __address__, __metrics_path__), or None."""
    base = dict(labels)
    for name, value in (("job", job["job_name"]), ("__metrics_path__", job.get("metrics_path", "/metrics")),
                        ("__scheme__", job.get("scheme", "http"))):
        base.setdefault(name, value)
    out = relabel(base, job.get("relabel_configs"))
    if out is None or not out.get("__address__"):
        return None
    out.setdefault("instance", out["__address__"])
    return out


def static_jobs(config):
    """The job of each static target of a Prometheus configuration, after relabelling."""
    jobs = set()
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                out = scrape_target(job, {"__address__": target, **static.get("labels", {})})
                if out:
                    jobs.add(out["job"])
    return jobs


def sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


POD_IP = "10.244.1.7"


def pod_targets(deployment, namespace):
    """The targets Prometheus's pod discovery makes of one pod of a Deployment: one per declared
    container port, with the meta labels of Prometheus's documentation."""
    meta = deployment["spec"]["template"]["metadata"]
    spec = deployment["spec"]["template"]["spec"]
    pod = {"__meta_kubernetes_namespace": namespace,
           "__meta_kubernetes_pod_name": f"{deployment['metadata']['name']}-5d4f8b7c9-x2x7q",
           "__meta_kubernetes_pod_ip": POD_IP, "__meta_kubernetes_pod_ready": "true",
           "__meta_kubernetes_pod_phase": "Running",
           "__meta_kubernetes_pod_controller_kind": "ReplicaSet"}
    for kind, values in (("label", meta.get("labels", {})), ("annotation", meta.get("annotations", {}))):
        for k, v in values.items():
            pod[f"__meta_kubernetes_pod_{kind}_{sanitize(k)}"] = str(v)
            pod[f"__meta_kubernetes_pod_{kind}present_{sanitize(k)}"] = "true"
    targets = []
    for c in spec["containers"]:
        for p in c.get("ports", []) or [None]:
            t = dict(pod, __meta_kubernetes_pod_container_name=c["name"], __meta_kubernetes_pod_container_init="false")
            if p:
                t.update(__address__=f"{POD_IP}:{p['containerPort']}",
                         __meta_kubernetes_pod_container_port_number=str(p["containerPort"]),
                         __meta_kubernetes_pod_container_port_name=p.get("name", ""),
                         __meta_kubernetes_pod_container_port_protocol=p.get("protocol", "TCP"))
            else:
                t["__address__"] = POD_IP
            targets.append(t)
    return targets


K8S_SCRAPE = "deploy/k8s/prometheus-scrape.yml"


def k8s_docs():
    docs = {}
    for f in sorted(os.listdir("deploy/k8s")):
        if f.endswith((".yaml", ".yml")) and f not in NOT_MANIFESTS and f != "kustomization.yaml":
            for doc in yaml.safe_load_all(read(f"deploy/k8s/{f}")):
                if doc:
                    docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def check_k8s_scrape():
    """The scrape configuration docs/deployment.md gives for Kubernetes: its targets are the
    Deployments' pods, under the jobs the alert rules select. Returns those jobs."""
    section(f"Kubernetes: Prometheus's scrape configuration ({K8S_SCRAPE})")
    jobs = yaml.safe_load(read(K8S_SCRAPE))
    if not check(isinstance(jobs, list) and all(isinstance(j, dict) and "job_name" in j for j in jobs),
                 f"{K8S_SCRAPE} is a list of scrape configurations"):
        return set()
    # docs/deployment.md shows it, as is.
    blocks = re.findall(r"```yaml\n(.*?)```", read("docs/deployment.md"), re.S)
    shown = [b for b in (yaml.safe_load(b) for b in blocks if "kubernetes_sd_configs" in b)]
    shown = [b["scrape_configs"] if isinstance(b, dict) else b for b in shown]
    check(jobs in shown, f"docs/deployment.md shows {K8S_SCRAPE} as it is ({len(shown)} such block)")
    # promtool, where installed: Debian's is built without Kubernetes discovery, so the discovery is
    # replaced by a static target there, and promtool checks the rest (the relabelling above all).
    promtool = shutil.which("promtool")
    if promtool:
        version = subprocess.run([promtool, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        version = re.sub(r"^promtool, version (\S+).*", r"promtool \1", version)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "prometheus.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"scrape_configs": jobs}, f)
            run = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
            how = "as it is"
            if run.returncode != 0 and "field kubernetes_sd_configs not found" in run.stdout + run.stderr:
                how = "with its Kubernetes discovery replaced by a static target (this promtool is built without it)"
                static = [{**{k: v for k, v in j.items() if k != "kubernetes_sd_configs"},
                           "static_configs": [{"targets": ["pod:1"]}]} for j in jobs]
                with open(path, "w") as f:
                    yaml.safe_dump({"scrape_configs": static}, f)
                run = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
            check(run.returncode == 0, f"promtool check config accepts it {how} ({version})"
                  + ("" if run.returncode == 0 else f": {(run.stdout + run.stderr).strip()[-400:]}"))
    else:
        print(f"  --    promtool not installed: {K8S_SCRAPE} is checked by the facts below only "
              "(apt-get install prometheus provides promtool)")
    kustomization = yaml.safe_load(read("deploy/k8s/kustomization.yaml"))
    namespace = kustomization.get("namespace")
    check(K8S_SCRAPE.rsplit("/", 1)[-1] not in kustomization["resources"], f"kustomization does not list it (not a manifest)")
    docs = k8s_docs()
    for job in jobs:
        sd = job.get("kubernetes_sd_configs", [])
        check(len(sd) == 1 and sd[0].get("role") == "pod" and sd[0].get("namespaces", {}).get("names") == [namespace],
              f"job {job['job_name']}: discovers the pods of the namespace {namespace} (kubernetes_sd_configs, role pod)")
    found = {}
    for service in SERVICES:
        deployment = docs.get(("Deployment", service))
        if deployment is None:
            continue
        meta = deployment["spec"]["template"]["metadata"]
        annotations = meta.get("annotations", {})
        targets = []
        try:
            for job in jobs:
                for labels in pod_targets(deployment, namespace):
                    out = scrape_target(job, labels)
                    if out:
                        targets.append(out)
            unannotated = dict(deployment, spec=dict(deployment["spec"], template=dict(
                deployment["spec"]["template"], metadata=dict(meta, annotations={}))))
            stray = [o for job in jobs for labels in pod_targets(unannotated, namespace) if (o := scrape_target(job, labels))]
        except (RelabelError, re.error, KeyError) as e:
            fail(f"{service}: the relabelling cannot be applied: {e}")
            continue
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        want = {"job": service, "__address__": f"{POD_IP}:{annotations.get('prometheus.io/port')}",
                "__metrics_path__": annotations.get("prometheus.io/path")}
        got = [{k: t.get(k) for k in want} for t in targets]
        check(got == [want] and str(port) == annotations.get("prometheus.io/port"),
              f"{service}: a pod is one target, job {service}, pod-ip:{port}{want['__metrics_path__']}"
              + ("" if got == [want] else f"; the configuration makes {got or 'no target'}"),
              "each Deployment's pod is one target, on its prometheus.io port and path, whose job is the Deployment's name")
        check(not stray, f"{service}: a pod without the prometheus.io annotations is not scraped"
              + ("" if not stray else f" (it is: {[t.get('job') for t in stray]})"),
              "a pod without prometheus.io/scrape is not scraped")
        for t in targets:
            found[t["job"]] = service
    # The job comes from a pod label that every Deployment's pods carry, with exactly the jobs'
    # values (those of prometheus.yml): which label, from the configuration itself.
    for job in jobs:
        sources = [c.get("source_labels", []) for c in job.get("relabel_configs", [])
                   if c.get("action", "replace") == "replace" and c.get("target_label") == "job"]
        check(len(sources) == 1 and len(sources[0]) == 1, f"job {job['job_name']}: one relabelling sets job, from one label"
              f" ({'; '.join(', '.join(x) for x in sources) or 'none'})")
        if not sources or len(sources[0]) != 1:
            continue
        source = sources[0][0]
        pod_labels = {s: d["spec"]["template"]["metadata"].get("labels", {}) for s in SERVICES
                      if (d := docs.get(("Deployment", s)))}
        names = {k for labels in pod_labels.values() for k in labels if f"__meta_kubernetes_pod_label_{sanitize(k)}" == source}
        label = sorted(names)[0] if names else None
        values = {s: labels.get(label) for s, labels in pod_labels.items()}
        check(label is not None and all(values[s] == s for s in values) and set(values) == set(SERVICES),
              f"job {job['job_name']}: job is the pod label {label or source} ({source}), which every Deployment's pods "
              f"carry with their process's name: {', '.join(f'{s}={v}' for s, v in values.items())}")
    return set(found)


def up_selectors(config_path):
    """The alert rules a Prometheus configuration loads that test `up{job...}`:
    [(alert, rules file, operator, value)]."""
    config = yaml.safe_load(read(config_path))
    out = []
    for pattern in config.get("rule_files", []):
        for path in sorted(glob.glob(os.path.join(os.path.dirname(config_path), pattern))):
            for group in (yaml.safe_load(read(path)) or {}).get("groups", []):
                for rule in group.get("rules", []):
                    if "alert" not in rule:
                        continue
                    for m in re.finditer(r"\bup\s*\{([^}]*)\}", rule["expr"]):
                        for op, value in re.findall(r'\bjob\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(1)):
                            out.append((rule["alert"], os.path.relpath(path), op, value.encode().decode("unicode_escape")))
    return out


def selects(op, value, job):
    return {"=": job == value, "!=": job != value, "=~": re.fullmatch(value, job) is not None,
            "!~": re.fullmatch(value, job) is None}[op]


def check_alert_jobs(k8s_jobs):
    """Every scrape job is watched by an up{job...} alert, and every job those alerts name is one
    of a configuration, so that renaming a job on either side cannot silence an alert."""
    section("Alert rules: every scrape job watched by an up{job} alert, every job they name scraped")
    wirings = []
    for path in ("config/prometheus/prometheus.yml", "config/prometheus/prometheus-embedded.yml"):
        wirings.append((os.path.basename(path), static_jobs(yaml.safe_load(read(path))), up_selectors(path)))
    # In Kubernetes, the rules are config/prometheus's (those prometheus.yml loads).
    wirings.append((K8S_SCRAPE, k8s_jobs, up_selectors("config/prometheus/prometheus.yml")))
    every_job = set().union(*(jobs for _, jobs, _ in wirings))
    for where, jobs, selectors in wirings:
        check(bool(selectors), f"{where}: its rules test up{{job...}} ({', '.join(sorted({a for a, *_ in selectors}))})")
        check(bool(jobs), f"{where}: its jobs are {', '.join(sorted(jobs)) or 'none'}")
        for job in sorted(jobs):
            watching = sorted({f"{a} ({op}\"{v}\")" for a, _, op, v in selectors if selects(op, v, job)})
            check(len(watching) == 1, f"{where}: job {job} is watched by " + (", ".join(watching) if watching else
                  "no alert: its selectors are " + "; ".join(sorted({f'{a} up{{job{op}"{v}"}}' for a, _, op, v in selectors}))
                  + f"; {job} could stop without an alert"),
                  "every scrape job is watched by exactly one up{job} alert (ServiceDown, KafkaDown, CassandraDown)")
    for alert, rules, op, value in sorted({s for _, _, selectors in wirings for s in selectors}):
        if op not in ("=", "=~"):
            fail(f"{rules}: {alert} selects up{{job{op}\"{value}\"}}: only = and =~ are checked here")
            continue
        names = [value] if op == "=" else value.split("|") if re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", value) else []
        if not names:
            check(any(selects(op, value, j) for j in every_job), f"{rules}: {alert}'s up{{job=~\"{value}\"}} matches a scraped job")
        for name in names:
            check(name in every_job, f"{rules}: {alert} names the job {name}, which "
                  + ("a configuration scrapes" if name in every_job else
                     f"no configuration scrapes (jobs: {', '.join(sorted(every_job))})"),
                  "every job an up{job} alert names is one a configuration scrapes")

ports = check_dockerfile()
check_compose(ports)
check_prometheus()
check_jmx()
check_logging()
check_kubernetes(ports)
k8s_jobs = check_k8s_scrape()
check_alert_jobs(k8s_jobs)
flush()
print(f"  {len(failures)} failed" if failures else "  all facts hold")
sys.exit(1 if failures else 0)
