// checkpoint: the parts of writing a Hugging Face checkpoint directory that every writer shares
// (init-model, sft, and later the learner): directories, and the tokenizer files beside the weights.
// The weights themselves go through model/safetensors.h, config.json through model/config.h.
#pragma once

// creates dir and its missing parents (mkdir -p)
int checkpoint_mkdirs(const char *dir);
// 0 when dir is missing or empty, 1 when it holds something, -1 when it is not a readable directory
int checkpoint_dir_nonempty(const char *dir);
// writes tokenizer.json and tokenizer_config.json into dst_dir: copies of src_dir's when it has
// them (src_dir may be NULL), else the Qwen3 files built into the binary
int checkpoint_write_tokenizer(const char *src_dir, const char *dst_dir);
