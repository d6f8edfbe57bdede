# learner/optim: AdamW + clip + schedule + NaN guard + state save/load
trustee_c_test(test_optim SOURCES test_optim.c LIBS trustee_learner)
# AdamW against torch.optim.AdamW (the C side writes a run, torch redoes it from the inputs)
add_executable(optim_torch_run optim_torch_run.c)
target_link_libraries(optim_torch_run PRIVATE trustee_learner)
trustee_sh_test(optim_torch optim_torch.sh)
