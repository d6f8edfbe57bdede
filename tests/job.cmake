# The distributed job (`trustee train`): one process, MPI role splits, bitwise resume, signals, the
# LM-simulated path (tests/job.sh).
foreach(mode one mpi resume signal lm)
  trustee_sh_test(job_${mode} job.sh ${mode})
  set_tests_properties(job_${mode} PROPERTIES TIMEOUT 900)
endforeach()
