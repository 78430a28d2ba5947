/* Preemption under a launcher: how long the ranks get between a launcher's
 * stop signal and SIGKILL, and a warning when that is shorter than finishing
 * a step and saving a checkpoint.
 *
 * Open MPI 4.x's mpirun, on SIGTERM or SIGINT, sends its ranks SIGCONT at
 * once, SIGTERM odls_base_sigkill_timeout seconds later (default 1) and
 * SIGKILL the same time after that, and exits 1 whatever the ranks do. So
 * the ranks see the stop only after T and must be done by 2T: a step, the
 * save and the exit must fit in T. mpirun forwards SIGUSR1 to every rank at
 * once instead, which is what launch/mpirun.sh sends it on SIGTERM (it sets
 * CT_LAUNCHER=mpirun.sh, and then the kill timeout does not matter). Slurm
 * signals the ranks itself and waits KillWait (a cluster setting, 30 s by
 * default) before SIGKILL; a rank cannot read it, so launch/slurm's sbatch
 * script passes it in CT_KILL_WAIT_S. */
#include <stdio.h>
#include <stdlib.h>

#include "core/env.h"
#include "core/log.h"
#include "trainer/trainer.h"

/* Under Slurm the sbatch script passes KillWait in CT_KILL_WAIT_S. */
static double env_seconds(const char *name, double dflt)
{
    const char *v = ct_env_get(name);
    char *end = NULL;
    double t = v && *v ? strtod(v, &end) : dflt;
    if (v && *v && (end == v || *end || t < 0)) t = dflt;
    return t;
}

static int under_mpirun(void) { return ct_env_get("OMPI_COMM_WORLD_SIZE") != NULL; }

double ct_preempt_kill_timeout(void)
{
    const char *lau = ct_env_get("CT_LAUNCHER");
    if (lau && *lau) return -1.0; /* a wrapper that forwards the stop at once */
    if (under_mpirun()) return env_seconds("OMPI_MCA_odls_base_sigkill_timeout", 1.0);
    return env_seconds("CT_KILL_WAIT_S", -1.0);
}

int ct_preempt_check(double need_s, const char *basis)
{
    double t = ct_preempt_kill_timeout();
    if (t < 0 || need_s <= t) return 0;
    int want = (int)(need_s * 1.5 + 10.0);
    if (under_mpirun())
        CT_LOG_WARN_R0("a SIGTERM to mpirun would lose the work since the last checkpoint: the "
                       "ranks get it %.0f s after mpirun and SIGKILL %.0f s after that "
                       "(odls_base_sigkill_timeout = %.0f), but finishing a step, saving and "
                       "exiting takes about %.1f s (%s)\n---> HINT: start the job with "
                       "launch/mpirun.sh (it passes a SIGTERM on to the ranks at once), send "
                       "mpirun SIGUSR1 instead of SIGTERM, or set "
                       "OMPI_MCA_odls_base_sigkill_timeout=%d in mpirun's environment",
                       t, t, t, need_s, basis, want);
    else
        CT_LOG_WARN_R0("a preemption or scancel would lose the work since the last checkpoint: "
                       "Slurm sends SIGKILL %.0f s after SIGTERM (KillWait), but finishing a "
                       "step, saving and exiting takes about %.1f s (%s)\n---> HINT: ask the "
                       "cluster's admins for KillWait >= %d, or checkpoint more often "
                       "(checkpoint.every)", t, need_s, basis, want);
    return 1;
}
