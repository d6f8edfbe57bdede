# slurm/train.sbatch on a one-node local Slurm (slurm/local-slurm.sh; tests/slurm.sh): a 3-rank
# 2-step job, and a 1-rank job stopped by SIGUSR1 that requeues itself and resumes. Each test
# starts the local Slurm (installing it if needed, or exit 77) and stops it; the lock keeps them
# from running at the same time.
trustee_sh_test(slurm_run slurm.sh run)
trustee_sh_test(slurm_requeue slurm.sh requeue 1)
set_tests_properties(slurm_run slurm_requeue PROPERTIES TIMEOUT 600 RESOURCE_LOCK local_slurm)
