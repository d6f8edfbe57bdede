# Qwen3 forward, paged KV cache, batched generation and sampler (model/qwen3, kvcache, engine, sampler)
trustee_c_test(test_model SOURCES test_model.c)
trustee_c_test(test_sampler SOURCES test_sampler.c)
trustee_c_test(test_engine SOURCES test_engine.c)
