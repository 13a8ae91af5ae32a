"""Cross-file facts of the deployment files (scripts/check-deploy.sh). Arguments: the repository
root and a directory holding the resolved compose projects (docker-compose config --format
json) as <combination>.json. Prints one line per fact checked; exits 1 if any is false."""

import fnmatch
import json
import os
import re
import subprocess
import sys
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


def readme_variables():
    """(embedded: set, separate: {var: set of services that read it})."""
    embedded, separate = set(), {}
    table = None
    for line in read("README.md").splitlines():
        if re.match(r"^\| variable \| default \|", line):
            table = "embedded"
            continue
        if re.match(r"^\| variable \| used by \|", line):
            table = "separate"
            continue
        if not line.startswith("|"):
            table = None
            continue
        if table is None or re.match(r"^\|\s*-", line):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
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
    return ports


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
                grace = service.get("stop_grace_period", "10s")
                check(int(grace.rstrip("s")) > 10, f"{combo}: {name} stop_grace_period {grace} > SHUTDOWN_TIMEOUT_SECS",
                      "every MetaChat container may stop longer than SHUTDOWN_TIMEOUT_SECS (10 s)")
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


def check_kubernetes(ports):
    section("Kubernetes manifests: kustomization, references, probes, variables")
    base = "deploy/k8s"
    kustomization = yaml.safe_load(read(f"{base}/kustomization.yaml"))
    listed = kustomization["resources"]
    present = sorted(f for f in os.listdir(base) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
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
        shutdown = int(config["data"].get("SHUTDOWN_TIMEOUT_SECS", "10"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        check(pod.get("terminationGracePeriodSeconds", 30) > shutdown + pre_stop,
              f"{service}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} > preStop {pre_stop} s + SHUTDOWN_TIMEOUT_SECS {shutdown} s")
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
        addresses = {k: v for k, v in config["data"].items() if k.endswith("_SERVICE_ADDRESS")}
    for key, address in addresses.items():
        host, port = address.rsplit(":", 1)
        check(("Service", host) in docs and docs[("Service", host)]["spec"]["ports"][0]["port"] == int(port),
              f"ConfigMap {key}={address} is a Service of the namespace")
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


ports = check_dockerfile()
check_compose(ports)
check_prometheus()
check_jmx()
check_logging()
check_kubernetes(ports)
flush()
print(f"  {len(failures)} failed" if failures else "  all facts hold")
sys.exit(1 if failures else 0)
