#!/usr/bin/env python3
"""Checks deploy/compose.yaml without running it (its postgres, redis and nginx images cannot be
pulled in CI): the file parses as YAML (anchors and merges resolved), has the README's services,
two mcpauth instances of the local image with the same issuer on PostgreSQL and Redis behind the
proxy, every MCPAUTH_* variable names a setting of the README's Configuration table, and nginx.conf
sends to both instances on the port the image exposes.

    python3 deploy/check-compose.py deploy/compose.yaml README.md
"""
import re
import sys
from pathlib import Path

import yaml

compose_path, readme_path = Path(sys.argv[1]), Path(sys.argv[2])
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


compose = yaml.safe_load(compose_path.read_text())
services = compose.get("services") or {}
readme = readme_path.read_text()
# Settings are the first column of the Configuration table: | `name` | or | `[section]` |.
config_table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
settings = set()
for cell in re.findall(r"^\| ([^|]+) \|", config_table, re.M):
    settings.update(name.strip("[]") for name in re.findall(r"`([^`]+)`", cell))

check(set(services) == {"postgres", "redis", "mcpauth-1", "mcpauth-2", "proxy"},
      f"services are {sorted(services)}")
instances = {name: s for name, s in services.items() if name.startswith("mcpauth-")}
issuers = set()
for name, service in instances.items():
    check(str(service.get("image", "")).startswith("mcpauth:"), f"{name}: image {service.get('image')}")
    check(service.get("pull_policy") == "never", f"{name}: the local image must never be pulled")
    check("ports" not in service, f"{name}: only the proxy publishes a port")
    env = service.get("environment") or {}
    check(isinstance(env, dict), f"{name}: environment as a mapping")
    for key in env:
        top = key[len("MCPAUTH_"):].split("__")[0].lower()
        check(key.startswith("MCPAUTH_") and top in settings,
              f"{name}: {key} names no setting of the README's Configuration table")
    check(str(env.get("MCPAUTH_DATABASE_URL", "")).startswith("postgres://"), f"{name}: PostgreSQL")
    check("@postgres:5432/" in str(env.get("MCPAUTH_DATABASE_URL", "")), f"{name}: the postgres service")
    check(str(env.get("MCPAUTH_REDIS_URL", "")) == "redis://redis:6379", f"{name}: the redis service")
    check(str(env.get("MCPAUTH_TRUST_PROXY", "")).lower() == "true", f"{name}: trust_proxy behind nginx")
    issuers.add(env.get("MCPAUTH_ISSUER"))
    depends = service.get("depends_on") or {}
    check({"postgres", "redis"} <= set(depends), f"{name}: depends on postgres and redis")
check(len(instances) == 2 and len(issuers) == 1 and None not in issuers,
      f"both instances need one and the same MCPAUTH_ISSUER: {issuers}")

proxy = services.get("proxy") or {}
check(set(proxy.get("depends_on") or {}) == set(instances), "the proxy depends on both instances")
check(proxy.get("ports"), "the proxy publishes a port")
mounts = [v.split(":") for v in proxy.get("volumes") or []]
conf = [compose_path.parent / m[0] for m in mounts if m[0].endswith(".conf")]
check(len(conf) == 1 and conf[0].is_file(), f"the proxy mounts an existing nginx config: {mounts}")
if conf and conf[0].is_file():
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", conf[0].read_text(), re.M))
    exposed = re.search(r"^EXPOSE (\d+)", (compose_path.parent / "Containerfile").read_text(), re.M)
    port = exposed.group(1) if exposed else "?"
    check(upstreams == {f"{name}:{port}" for name in instances},
          f"nginx sends to {sorted(upstreams)}, not to both instances on port {port}")

if problems:
    print("check-compose: FAILED", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"check-compose: {compose_path.name}: {', '.join(sorted(services))}; "
      f"both instances on PostgreSQL and Redis with issuer {issuers.pop()}; nginx to both on port {port}")
