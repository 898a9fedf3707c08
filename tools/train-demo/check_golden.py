"""Checks flux_modules.py against the shared golden tiny models (float32 reference outputs).
Usage: /usr/bin/python3 tools/train-demo/check_golden.py [/work/shared/golden]"""
import json
import sys

import torch

from flux_modules import AutoencoderKL, ClipTextModel, FluxTransformer, T5Encoder, read_safetensors

root = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/golden"


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def load(model, path):
    missing, unexpected = model.load_state_dict(read_safetensors(path), strict=False)
    assert not unexpected, unexpected
    assert not missing, missing
    return model


with torch.no_grad():
    cfg = json.load(open(f"{root}/flux-tiny-a/transformer/config.json"))
    tr = load(FluxTransformer(cfg), f"{root}/flux-tiny-a/transformer/diffusion_pytorch_model.safetensors")
    g = read_safetensors(f"{root}/flux-tiny-a/forward.safetensors")
    out, streams = tr(g["img"], g["txt"], g["timesteps"], g["y"], g["img_ids"][0], g["txt_ids"][0], g["guidance"], return_streams=True)
    print("transformer out", rel(out, g["out"]))
    for k in streams:
        if k in g:
            print("  ", k, rel(streams[k], g[k]))

    vcfg = json.load(open(f"{root}/flux-tiny-a/vae/config.json"))
    vae = load(AutoencoderKL(vcfg), f"{root}/flux-tiny-a/vae/diffusion_pytorch_model.safetensors")
    d = read_safetensors(f"{root}/flux-tiny-a/decode.safetensors")
    print("vae decode", rel(vae.decode_model_latent(d["z"]), d["image"]))

    e = read_safetensors(f"{root}/text-tiny-a/encode.safetensors")
    clip = load(ClipTextModel(json.load(open(f"{root}/text-tiny-a/text_encoder/config.json"))), f"{root}/text-tiny-a/text_encoder/model.safetensors")
    hidden, pooled = clip(e["clip_input_ids"])
    print("clip hidden", rel(hidden, e["clip_hidden"]), "pooled", rel(pooled, e["clip_pooled"]))
    t5 = load(T5Encoder(json.load(open(f"{root}/text-tiny-a/text_encoder_2/config.json"))), f"{root}/text-tiny-a/text_encoder_2/model.safetensors")
    print("t5 hidden", rel(t5(e["t5_input_ids"]), e["t5_hidden"]))
