# Training core: backward ops (finite differences), model gradients (PyTorch references), losses,
# on-policy log-probs, `trustee grad` (model/qwen3_train, learner/loss, kernels/*backward*)
trustee_c_test(test_grad_ops SOURCES test_grad_ops.c)
trustee_c_test(test_grad_model SOURCES test_grad_model.c LIBS trustee_learner)
trustee_c_test(test_loss SOURCES test_loss.c LIBS trustee_learner)
trustee_sh_test(test_grad_cli grad_cli.sh)
