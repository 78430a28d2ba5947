#!/usr/bin/env bash
# launch/k8s/mpijob.yaml stays well-formed and self-consistent: three YAML
# documents (ConfigMap, ReadWriteMany PVC, kubeflow.org/v2beta1 MPIJob);
# launch/mpirun.sh's rank count (the config's dp x tp) = Worker replicas x
# slotsPerWorker; both pods have a grace period and preemption-aware PID 1s;
# the config and the shared volume are mounted where the ranks run (the
# workers); every launcher start resumes (checkpoint.resume=auto); one
# rank per GPU, parallel.tp dividing slotsPerWorker (TP inside a worker),
# model.device cuda; and train.sbatch's GPU line matches its tasks per
# node. Needs
# python3 with PyYAML; exits 77 without it. The exit code is the verdict.
set -u
MANIFEST=$(cd "$(dirname "$0")/../.." && pwd)/launch/k8s/mpijob.yaml
python3 -c 'import yaml' 2>/dev/null || { echo "test_manifests: no python3 yaml module; skipped"; exit 77; }
python3 - "$MANIFEST" "$(dirname "$MANIFEST")/../slurm/train.sbatch" <<'PY'
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
lspec = launcher["template"]["spec"]
lc = lspec["containers"][0]
argv = lc.get("command", []) + lc.get("args", [])
# launch/mpirun.sh takes -np from the config's dp x tp: it must match the pods
expect(argv[0].endswith("/launch/mpirun.sh") and argv[1] == "/config/train.yaml",
       f"launcher runs {argv[:2]}, want launch/mpirun.sh /config/train.yaml")
expect("-np" not in argv, "an -np in the launcher's args overrides the config's dp x tp")
expect(world == worker["replicas"] * spec["slotsPerWorker"],
       f"dp x tp {world} != workers x slots {worker['replicas'] * spec['slotsPerWorker']}")
lmounts = {m["mountPath"]: m["name"] for m in lc.get("volumeMounts", [])}
lvols = {v["name"]: v for v in lspec.get("volumes", [])}
expect(lmounts.get("/config") and lvols[lmounts["/config"]]["configMap"]["name"] == cm["metadata"]["name"],
       "config not mounted at /config on the launcher (mpirun.sh reads it)")
ct_args = argv[argv.index("--") + 1:] if "--" in argv else []
expect("checkpoint.resume=auto" in ct_args, "launcher resumes with auto")
mapby = argv[argv.index("--map-by") + 1]
expect(mapby == f"ppr:{spec['slotsPerWorker']}:node", f"--map-by {mapby}: want ppr:slotsPerWorker:node (never node)")
# mpirun.sh forwards variables by prefix; others would not reach the ranks
env = [e["name"] for e in lc.get("env", [])]
fwd = ("CT_", "OMP_", "AWS_", "NCCL_", "UCX_")
expect(all(n.startswith(fwd) for n in env), f"launcher env not forwarded: {[n for n in env if not n.startswith(fwd)]}")
wspec = worker["template"]["spec"]
# preemption: both pods get time to save, and a worker's PID 1 waits for its ranks
for name, ps in (("launcher", lspec), ("worker", wspec)):
    expect(ps.get("terminationGracePeriodSeconds", 30) >= 60, f"{name} terminationGracePeriodSeconds < 60")
wc = wspec["containers"][0]
wargv = wc.get("command", []) + wc.get("args", [])
expect(wargv[0].endswith("/launch/k8s/worker-entry.sh") and "sshd" in wargv[1],
       f"worker runs {wargv[:2]}, want worker-entry.sh around sshd")
mounts = {m["mountPath"]: m["name"] for m in wspec["containers"][0]["volumeMounts"]}
vols = {v["name"]: v for v in wspec["volumes"]}
expect(mounts.get("/config") and vols[mounts["/config"]]["configMap"]["name"] == cm["metadata"]["name"],
       "config not mounted at /config on workers")
shared = vols.get(mounts.get("/shared", ""), {}).get("persistentVolumeClaim", {}).get("claimName")
expect(shared == pvc["metadata"]["name"], "shared PVC not mounted at /shared on workers")
expect(pvc["spec"]["accessModes"] == ["ReadWriteMany"], "PVC not ReadWriteMany")
expect(cfg["train"]["run_dir"].startswith("/shared/"), "run_dir not on the shared volume")
res = wspec["containers"][0]["resources"]
gpus = res["limits"].get("nvidia.com/gpu")
expect(gpus == spec["slotsPerWorker"], f"GPUs per worker {gpus} != slotsPerWorker")
expect(res.get("requests", {}).get("nvidia.com/gpu", gpus) == gpus, "GPU requests != limits")
# one rank per GPU, and each TP group on one worker (ranks are packed by worker)
tp = cfg["parallel"].get("tp", 1)
expect(spec["slotsPerWorker"] % tp == 0, f"parallel.tp {tp} does not divide slotsPerWorker: TP groups would span workers")
expect(cfg["model"].get("device") == "cuda", "model.device is not cuda: a worker without its GPUs would train on the CPU")
rp = spec["runPolicy"]
expect(rp.get("backoffLimit", 0) > 0 and rp.get("cleanPodPolicy") in ("Running", "All", "None"), "runPolicy")
# launch/slurm/train.sbatch: its GPU line (commented out by default) keeps
# one task per GPU
import re
sb = open(sys.argv[2]).read()
ntasks = re.search(r"^#SBATCH --ntasks-per-node=(\d+)", sb, re.M)
gpn = re.search(r"^##SBATCH --gpus-per-node=(\d+)", sb, re.M)
expect(ntasks and gpn and ntasks.group(1) == gpn.group(1),
       "train.sbatch: --gpus-per-node line missing or != --ntasks-per-node")
for f in failed:
    print("FAIL:", f, file=sys.stderr)
print(f"test_manifests: {checks} checks, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
