#!/usr/bin/env python3
"""A tiny local Qwen2 model for `swift sft` in the real-stack tests: nothing from a hub.

The weights are random (seeded), the tokenizer is the BPE tokenizer realstack_data.py trained,
wrapped as a PreTrainedTokenizerFast with the ChatML markers Qwen2's template writes
(<|im_start|>, <|im_end|>) as special tokens and a chat template, so that ms-swift's `qwen2`
model type loads the directory as it would a downloaded Qwen2. The model is small enough that
four ranks train it on CPU in seconds; the job's cost is then the data path, which is what the
tests measure.

Usage:
  python swift_tiny_model.py --tokenizer DIR --out MODEL_DIR [--seed S]
Prints "params=..." and "vocab=...".
"""
import argparse
import os

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True, help="realstack_data.py's output dir")
    parser.add_argument("--out", required=True, help="model directory (created)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(args.tokenizer, "tokenizer.json"),
        bos_token=None, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=4096, clean_up_tokenization_spaces=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    # Qwen2's embedding table is padded past the tokenizer; a multiple of 64 does the same.
    vocab = (len(tokenizer) + 63) // 64 * 64
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, torch_dtype="float32",
        bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(config)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    print("params=%d" % sum(p.numel() for p in model.parameters()))
    print("vocab=%d" % vocab)


if __name__ == "__main__":
    main()
