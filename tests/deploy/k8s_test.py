#!/usr/bin/python3
"""Checks deploy/k8s/awaitd.yaml without a cluster (kubectl is not here):
every document parses, and the fields that must agree do: ports, probes,
the non-root user the image runs as, the token Secret mounted where the
flags point, and every flag is one awaitd accepts.

  k8s_test.py SOURCE_DIR AWAITD
"""
import os
import subprocess
import sys
import tempfile

import yaml

src, awaitd = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


with open(os.path.join(src, "deploy/k8s/awaitd.yaml")) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
by_kind = {d["kind"]: d for d in docs}
check(set(by_kind) == {"ConfigMap", "Service", "StatefulSet"},
      f"documents: {sorted(by_kind)}")

sts = by_kind["StatefulSet"]
pod = sts["spec"]["template"]["spec"]
check(sts["spec"]["replicas"] == 1, "one replica: the job table is per process")
labels = sts["spec"]["template"]["metadata"]["labels"]
check(sts["spec"]["selector"]["matchLabels"].items() <= labels.items(),
      "the selector matches the pod's labels")

# Runs as the image's non-root user.
with open(os.path.join(src, "deploy/container/Containerfile")) as f:
    image_user = [l.split()[1] for l in f if l.startswith("USER ")][-1]
psc = pod["securityContext"]
check(psc["runAsNonRoot"] is True, "runAsNonRoot")
check(str(psc["runAsUser"]) == image_user.split(":")[0],
      f"runAsUser {psc['runAsUser']} is the image's USER {image_user}")
check(psc["seccompProfile"]["type"] == "RuntimeDefault", "seccomp")
(c,) = pod["containers"]
csc = c["securityContext"]
check(csc["allowPrivilegeEscalation"] is False, "no privilege escalation")
check(csc["readOnlyRootFilesystem"] is True, "read-only root")
check(csc["capabilities"]["drop"] == ["ALL"], "drops every capability")

# Ports, probes, Service, scrape annotations agree.
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
check(ports.get("grpc") == 50051 and ports.get("metrics") == 9464,
      f"container ports {ports}")
for probe in ("readinessProbe", "livenessProbe"):
    check(c[probe]["grpc"]["port"] == ports["grpc"], f"{probe} on the gRPC port")
for p in by_kind["Service"]["spec"]["ports"]:
    check(p["targetPort"] in ports, f"Service port {p['name']} targets a container port")
check(by_kind["Service"]["spec"]["selector"].items() <= labels.items(),
      "the Service selects the pods")
ann = sts["spec"]["template"]["metadata"]["annotations"]
check(int(ann["prometheus.io/port"]) == ports["metrics"], "scrape port")

# The flags: from the ConfigMap, through the mount the args name.
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
volumes = {v["name"]: v for v in pod["volumes"]}
flagfile = [a for a in c["args"] if a.startswith("--flagfile=")]
check(len(flagfile) == 1, "args name one --flagfile")
flagfile = flagfile[0].split("=", 1)[1]
cm_volume = [n for n, v in volumes.items() if "configMap" in v][0]
check(os.path.dirname(flagfile) == mounts[cm_volume], "--flagfile is in the ConfigMap's mount")
cm = by_kind["ConfigMap"]
check(volumes[cm_volume]["configMap"]["name"] == cm["metadata"]["name"], "ConfigMap name")
flag_lines = cm["data"][os.path.basename(flagfile)].split()
flags = dict(l.lstrip("-").split("=", 1) for l in flag_lines)
check(flags["listen"].endswith(":%d" % ports["grpc"]), "--listen on the gRPC port")
check(flags["metrics_listen"].endswith(":%d" % ports["metrics"]), "--metrics_listen on the metrics port")
# Beyond loopback, awaitd needs TLS or tokens: the token file comes from the
# Secret's mount.
token = flags.get("token_file", "")
secret_volume = [n for n, v in volumes.items() if "secret" in v][0]
check(token.startswith(mounts[secret_volume] + "/"), "--token_file is in the Secret's mount")
check(volumes[secret_volume]["secret"]["secretName"] == "awaitd-tokens", "the token Secret")
grace = float(flags.get("shutdown_grace", "10s").rstrip("s"))
check(pod["terminationGracePeriodSeconds"] > grace + 10,
      "terminationGracePeriodSeconds leaves room for --shutdown_grace")
check(any(t["metadata"]["name"] in mounts for t in sts["spec"]["volumeClaimTemplates"]),
      "the data volume is mounted")
check(mounts.get("data") == "/var/lib/awaitd", "data under /var/lib/awaitd")
check(flags.get("data_dir") == mounts.get("data"), "--data_dir is the data volume")
check(flags.get("durability", "sync") != "none", "jobs are durable")

# awaitd itself accepts the flags file (names and values), with the token
# file replaced by a real one and the addresses by free loopback ports.
with tempfile.TemporaryDirectory() as tmp:
    tokens = os.path.join(tmp, "tokens")
    with open(tokens, "w") as f:
        f.write("k8s-test-token\n")
    os.chmod(tokens, 0o600)
    lines = [l for l in flag_lines if not l.startswith(("--token_file=", "--listen=", "--metrics_listen=", "--data_dir="))]
    lines += ["--token_file=" + tokens, "--listen=127.0.0.1:0", "--metrics_listen=",
              "--data_dir=" + os.path.join(tmp, "data"),
              "--port_file=" + os.path.join(tmp, "port")]
    with open(os.path.join(tmp, "flags"), "w") as f:
        f.write("\n".join(lines) + "\n")
    p = subprocess.Popen([awaitd, "--flagfile=" + os.path.join(tmp, "flags")],
                         stderr=subprocess.PIPE, text=True)
    started = False
    for _ in range(200):
        if os.path.exists(os.path.join(tmp, "port")) or p.poll() is not None:
            started = p.poll() is None
            break
        subprocess.run(["sleep", "0.05"])
    p.terminate()
    err = p.communicate(timeout=30)[1]
    check(started, "awaitd starts with the ConfigMap's flags:\n" + err)
    check(p.returncode == 0, f"awaitd exited {p.returncode} on SIGTERM")

if failures:
    print("deploy/k8s/awaitd.yaml:")
    for f in failures:
        print("  FAIL:", f)
    sys.exit(1)
print("ok: %d documents, %d flags checked" % (len(docs), len(flag_lines)))
