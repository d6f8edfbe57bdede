# Learning tests of the training core: SFT overfits one chat (trustee sft), GRPO raises a toy
# reward (engine rollouts + learner/loss + backward + AdamW).
trustee_c_test(test_grpo_learn SOURCES test_grpo_learn.c LIBS trustee_learner)
trustee_sh_test(sft_learn sft_learn.sh)
