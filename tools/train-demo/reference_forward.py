"""Writes tests/fixtures/flux-demo/reference.safetensors (F32, plus I64 ids): one real call of each component of
the exported demo model, computed from the exported BF16 files with flux_modules.py, for the engine's tests:
tokenizer ids and text-encoder outputs for a prompt, one transformer call, one VAE decode.
Usage: /usr/bin/python3 tools/train-demo/reference_forward.py [model folder] [out file]"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flux_modules import (AutoencoderKL, ClipTextModel, FluxTransformer, T5Encoder, image_ids, pack_latents,  # noqa: E402
                          read_safetensors, write_safetensors)
from demo_tokenizers import ClipBpe, T5_MAX_LENGTH, T5Unigram  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROMPT = "a red circle and a blue square on a yellow background"
TIMESTEP = 0.75
SEED = 7


def load(cls, folder, weights):
    model = cls(json.load(open(f"{folder}/config.json")))
    model.load_state_dict(read_safetensors(f"{folder}/{weights}"))
    return model.eval()


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "public", "models", "flux-demo")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "tests", "fixtures", "flux-demo", "reference.safetensors")
    vocab = json.load(open(f"{model_dir}/tokenizer/vocab.json"))
    merges = [tuple(line.split()) for line in open(f"{model_dir}/tokenizer/merges.txt").read().splitlines()[1:] if line]
    bpe = ClipBpe(merges)
    assert bpe.vocab == vocab
    pieces = json.load(open(f"{model_dir}/tokenizer_2/tokenizer.json"))["model"]["vocab"]
    words = [p[1:] for p, _ in pieces if p.startswith("\u2581") and len(p) > 1]
    unigram = T5Unigram(words)
    assert [[p, s] for p, s in unigram.pieces] == pieces
    clip = load(ClipTextModel, f"{model_dir}/text_encoder", "model.safetensors")
    t5 = load(T5Encoder, f"{model_dir}/text_encoder_2", "model.safetensors")
    transformer = load(FluxTransformer, f"{model_dir}/transformer", "diffusion_pytorch_model.safetensors")
    vae = load(AutoencoderKL, f"{model_dir}/vae", "diffusion_pytorch_model.safetensors")
    with torch.no_grad():
        clip_ids = torch.tensor([bpe.encode(PROMPT)])
        t5_ids = torch.tensor([unigram.encode(PROMPT)])
        clip_hidden, clip_pooled = clip(clip_ids)
        t5_hidden = t5(t5_ids)
        size = vae.cfg["sample_size"] // 8
        noise = torch.randn(1, 16, size, size, generator=torch.Generator().manual_seed(SEED))
        img = pack_latents(noise)
        img_ids, txt_ids = image_ids(size, size), torch.zeros(T5_MAX_LENGTH, 3)
        v, streams = transformer(img, t5_hidden, torch.tensor([TIMESTEP]), clip_pooled, img_ids, txt_ids, return_streams=True)
        z = noise - TIMESTEP * v.view(1, size // 2, size // 2, 16, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(noise.shape)
        image = vae.decode_model_latent(z)
    tensors = {
        "clip_hidden": clip_hidden, "clip_pooled": clip_pooled, "t5_hidden": t5_hidden,
        "img": img, "img_ids": img_ids[None], "txt": t5_hidden, "txt_ids": txt_ids[None], "timesteps": torch.tensor([TIMESTEP]),
        "y": clip_pooled, "out": v, "z": z, "image": image,
        **{k: t for k, t in streams.items()},
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, tensors, "F32")
    # Ids as I64, appended by rewriting with a second header entry set (write_safetensors handles floats only).
    with open(out, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    extra = b""
    for name, ids in (("clip_input_ids", clip_ids), ("t5_input_ids", t5_ids)):
        raw = ids.numpy().astype("<i8").tobytes()
        header[name] = {"dtype": "I64", "shape": list(ids.shape), "data_offsets": [len(body) + len(extra), len(body) + len(extra) + len(raw)]}
        extra += raw
    header["__metadata__"] = {"prompt": PROMPT, "seed": str(SEED)}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + body + extra)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
