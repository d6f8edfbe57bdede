/* Files the trustee binary carries inside itself, so a job started on any node finds them
   without depending on the working directory (see model/embedded.h). */
    .section .rodata
    .balign 64
    .global embedded_qwen3_tokenizer_json
    .global embedded_qwen3_tokenizer_json_end
embedded_qwen3_tokenizer_json:
    .incbin "qwen3-tokenizer/tokenizer.json"
embedded_qwen3_tokenizer_json_end:
    .byte 0
    .balign 8
    .global embedded_qwen3_tokenizer_config_json
    .global embedded_qwen3_tokenizer_config_json_end
embedded_qwen3_tokenizer_config_json:
    .incbin "qwen3-tokenizer/tokenizer_config.json"
embedded_qwen3_tokenizer_config_json_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
