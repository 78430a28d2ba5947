#!/usr/bin/env bash
# launch/k8s/mpijob.yaml stays well-formed and self-consistent: three YAML
# documents (ConfigMap, ReadWriteMany PVC, kubeflow.org/v2beta1 MPIJob);
# mpirun's -np = Worker replicas x slotsPerWorker = the config's dp x tp;
# the config and the shared volume are mounted where the ranks run (the
# workers); every launcher start resumes (checkpoint.resume=auto). Needs
# python3 with PyYAML; exits 77 without it. The exit code is the verdict.
set -u
MANIFEST=$(cd "$(dirname "$0")/../.." && pwd)/launch/k8s/mpijob.yaml
python3 -c 'import yaml' 2>/dev/null || { echo "test_manifests: no python3 yaml module; skipped"; exit 77; }
python3 - "$MANIFEST" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
checks, failed = 0, []
def expect(ok, what):
    global checks
    checks += 1
    if not ok: failed.append(what)
expect(sorted(kinds) == ["ConfigMap", "MPIJob", "PersistentVolumeClaim"], f"kinds {sorted(kinds)}")
job, cm, pvc = kinds["MPIJob"], kinds["ConfigMap"], kinds["PersistentVolumeClaim"]
expect(job["apiVersion"] == "kubeflow.org/v2beta1", "MPIJob apiVersion")
spec = job["spec"]
launcher, worker = spec["mpiReplicaSpecs"]["Launcher"], spec["mpiReplicaSpecs"]["Worker"]
cfg = yaml.safe_load(cm["data"]["train.yaml"])
world = cfg["parallel"]["dp"] * cfg["parallel"].get("tp", 1)
lc = launcher["template"]["spec"]["containers"][0]
argv = lc.get("command", []) + lc.get("args", [])
np_ = int(argv[argv.index("-np") + 1])
expect(np_ == worker["replicas"] * spec["slotsPerWorker"] == world,
       f"-np {np_}, workers x slots {worker['replicas'] * spec['slotsPerWorker']}, dp x tp {world}")
expect(argv[0] == "mpirun" and "--set" in argv and "checkpoint.resume=auto" in argv, "launcher resumes with auto")
expect("node" not in argv[argv.index("--map-by") + 1].split(":")[0], "map-by node splits TP groups")
fwd = [argv[i + 1] for i, a in enumerate(argv) if a == "-x"]
env = [e["name"] for e in lc.get("env", [])]
expect(set(fwd) <= set(env), f"-x names without a launcher env: {set(fwd) - set(env)}")
wspec = worker["template"]["spec"]
mounts = {m["mountPath"]: m["name"] for m in wspec["containers"][0]["volumeMounts"]}
vols = {v["name"]: v for v in wspec["volumes"]}
expect(mounts.get("/config") and vols[mounts["/config"]]["configMap"]["name"] == cm["metadata"]["name"],
       "config not mounted at /config on workers")
shared = vols.get(mounts.get("/shared", ""), {}).get("persistentVolumeClaim", {}).get("claimName")
expect(shared == pvc["metadata"]["name"], "shared PVC not mounted at /shared on workers")
expect(pvc["spec"]["accessModes"] == ["ReadWriteMany"], "PVC not ReadWriteMany")
expect(cfg["train"]["run_dir"].startswith("/shared/"), "run_dir not on the shared volume")
gpus = wspec["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
expect(gpus == spec["slotsPerWorker"], f"GPUs per worker {gpus} != slotsPerWorker")
rp = spec["runPolicy"]
expect(rp.get("backoffLimit", 0) > 0 and rp.get("cleanPodPolicy") in ("Running", "All", "None"), "runPolicy")
for f in failed:
    print("FAIL:", f, file=sys.stderr)
print(f"test_manifests: {checks} checks, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
