"""Trains the demo model (a tiny FLUX.1-schnell-architecture text-to-image model over procedural scenes) and
exports it in the diffusers folder layout. One command, seeded, resumable (stages cache into --work):

    /usr/bin/python3 tools/train-demo/train.py --seed 0

Stages: scenes (TypeScript generator, src/eval/scenes.ts) -> VAE -> latents -> caption token ids -> transformer
and both text encoders trained together (rectified flow, logit-normal t, 10 % empty captions) -> BF16 export -> sample
the fixed prompt set with the exported weights and score it with the TypeScript scorer (tools/train-demo/score.ts).
"""
import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flux_modules import (AutoencoderKL, ClipTextModel, FluxTransformer, T5Encoder, bf16_round, image_ids, pack_latents,  # noqa: E402
                          unpack_latents, write_safetensors)
from demo_tokenizers import (CLIP_MAX_LENGTH, T5_MAX_LENGTH, T5Unigram, build_clip_bpe, caption_words,  # noqa: E402
                             write_clip_tokenizer, write_t5_tokenizer)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
IMAGE_SIZE = 64
LATENT_SIZE = IMAGE_SIZE // 8

VAE_CONFIG = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0", "act_fn": "silu",
    "block_out_channels": [32, 32, 64, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "layers_per_block": 1,
    "mid_block_add_attention": True, "norm_num_groups": 32, "sample_size": IMAGE_SIZE,
    # FLUX.1's own factors: the VAE is trained so that its latents have this shift and scale.
    "scaling_factor": 0.3611, "shift_factor": 0.1159,
    "use_quant_conv": False, "use_post_quant_conv": False, "force_upcast": True,
}
CLIP_CONFIG = {
    "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "hidden_size": 64, "intermediate_size": 256,
    "num_attention_heads": 2, "num_hidden_layers": 2, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    "max_position_embeddings": CLIP_MAX_LENGTH, "projection_dim": 64, "torch_dtype": "bfloat16",
}
T5_CONFIG = {
    "architectures": ["T5EncoderModel"], "model_type": "t5", "d_model": 64, "d_kv": 32, "num_heads": 2, "d_ff": 256,
    "num_layers": 2, "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": True,
    "layer_norm_epsilon": 1e-6, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
    "is_encoder_decoder": True, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "torch_dtype": "bfloat16",
}
TRANSFORMER_CONFIG = {
    "_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.30.0", "attention_head_dim": 64,
    "axes_dims_rope": [8, 28, 28], "guidance_embeds": False, "in_channels": 64, "joint_attention_dim": 64,
    "num_attention_heads": 2, "num_layers": 2, "num_single_layers": 2, "patch_size": 1, "pooled_projection_dim": 64,
}
SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.30.0", "base_image_seq_len": 256,
    "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 1.0,
    "use_dynamic_shifting": False,
}
MODEL_INDEX = {
    "_class_name": "FluxPipeline", "_diffusers_version": "0.30.0",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "FluxTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
# Sampling defaults, from a sweep of the seed-0 export over the fixed prompts and 128 more (PyTorch, this
# tool's scorer): 8 steps at CFG 3 drew single-object shapes 57 % right, 24 steps at CFG 5 68 %; more steps or
# a higher scale gained nothing further.
STEPS = 24
CFG_SCALE = 5.0
CAPTION_DROPOUT = 0.1


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def npx_tsx(*args):
    subprocess.run(["npx", "tsx", *args], cwd=REPO, check=True)


def load_scenes(path):
    images = np.fromfile(path, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3)
    captions = json.load(open(path + ".json"))["captions"]
    return images, captions


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


# ----------------------------------------------------------------------------------------------- VAE

def train_vae(args, images, path):
    if os.path.exists(path):
        return torch.load(path)
    torch.manual_seed(args.seed)
    vae = AutoencoderKL(VAE_CONFIG)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    data = to_tensor(images[: -args.holdout])
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for step in range(args.vae_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.vae_steps, 1e-3, 100)
        # Random crops: the VAE is fully convolutional (the mid attention is global but tiny), and crops cut the cost
        # per step enough to train it in minutes on 2 cores.
        oy, ox = (int(v) for v in torch.randint(0, IMAGE_SIZE - args.vae_crop + 1, (2,), generator=g) // 8 * 8)
        x = data[torch.randint(0, len(data), (args.vae_batch,), generator=g)][:, :, oy:oy + args.vae_crop, ox:ox + args.vae_crop]
        z = vae.to_model_latent(vae.encode_mean(x))
        # Latent statistics pinned to FLUX's scale/shift (per channel mean 0, std 1 in model space), and a little
        # noise so the decoder tolerates the transformer's imperfect latents.
        mean, std = z.mean((0, 2, 3)), z.std((0, 2, 3))
        reg = mean.pow(2).mean() + (std - 1).pow(2).mean()
        y = vae.decode_model_latent(z + 0.1 * torch.randn(z.shape, generator=g))
        mse = F.mse_loss(y, x)
        loss = mse + 0.1 * (y - x).abs().mean() + 0.01 * reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.vae_steps - 1:
            psnr = 10 * math.log10(4 / mse.item())
            log(f"vae step {step} mse {mse.item():.5f} psnr {psnr:.1f} dB reg {reg.item():.4f} {(time.time() - t0) / (step + 1):.3f} s/step")
    state = vae.state_dict()
    torch.save(state, path)
    return state


def encode_latents(vae, images, path):
    if os.path.exists(path):
        return torch.load(path)
    with torch.no_grad():
        zs = [vae.to_model_latent(vae.encode_mean(to_tensor(images[i:i + 256]))) for i in range(0, len(images), 256)]
    z = torch.cat(zs)
    torch.save(z, path)
    return z


def finetune_decoder(args, vae_state, images, latents, path):
    """Decoder-only fine-tune on whole 64x64 images from the fixed latents: the crops the VAE was trained on give
    its mid attention 4x4 instead of 8x8 tokens, which costs several dB on whole images; the latents (and so the
    transformer's training data) do not change."""
    if os.path.exists(path):
        return torch.load(path)
    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict(vae_state)
    opt = torch.optim.Adam(vae.decoder.parameters(), lr=3e-4)
    n = len(images) - args.holdout
    g = torch.Generator().manual_seed(args.seed + 4)
    t0 = time.time()
    for step in range(args.decoder_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.decoder_steps, 3e-4, 20)
        idx = torch.randint(0, n, (args.decoder_batch,), generator=g)
        x = to_tensor(images[idx.numpy()])
        y = vae.decode_model_latent(latents[idx] + 0.1 * torch.randn(latents[idx].shape, generator=g))
        mse = F.mse_loss(y, x)
        loss = mse + 0.1 * (y - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.decoder_steps - 1:
            log(f"decoder step {step} psnr {10 * math.log10(4 / mse.item()):.1f} dB {(time.time() - t0) / (step + 1):.3f} s/step")
    state = vae.state_dict()
    torch.save(state, path)
    return state


def vae_report(vae, images, latents, holdout):
    with torch.no_grad():
        x = to_tensor(images[-holdout:])
        y = vae.decode_model_latent(latents[-holdout:]).clamp(-1, 1)
        psnr = 10 * math.log10(4 / F.mse_loss(y, x).item())
    return {"heldout_psnr_db": round(psnr, 2), "latent_mean": round(latents.mean().item(), 4), "latent_std": round(latents.std().item(), 4)}


# ----------------------------------------------------------------------------------------------- text

def init_text_encoders(seed, clip_vocab, t5_vocab):
    """Random encoders, initialised so that attention mixes the tokens (unit-scale embeddings); the transformer's
    training then trains them too: frozen random encoders barely tell "a red circle on a blue background" from "a blue
    circle on a red background" (T5 outputs 0.88 cosine-similar), and a model trained on them swapped object and
    background colours."""
    torch.manual_seed(seed + 1)
    clip_cfg = dict(CLIP_CONFIG, vocab_size=clip_vocab, bos_token_id=clip_vocab - 2, eos_token_id=clip_vocab - 1, pad_token_id=clip_vocab - 1)
    t5_cfg = dict(T5_CONFIG, vocab_size=t5_vocab)
    clip, t5 = ClipTextModel(clip_cfg), T5Encoder(t5_cfg)
    for model in (clip, t5):
        for name, p in model.named_parameters():
            if "norm" in name:
                continue
            if p.dim() == 2 and ("embedding" in name or "shared" in name):
                torch.nn.init.normal_(p, std=1.0)
            elif p.dim() == 2:
                torch.nn.init.normal_(p, std=p.shape[1] ** -0.5)
            else:
                torch.nn.init.zeros_(p)
    # Weights are what the engine will load: round them to BF16 now so training sees the exported encoders.
    with torch.no_grad():
        for model in (clip, t5):
            for p in model.parameters():
                p.copy_(bf16_round(p))
    return clip, t5


def caption_ids(bpe, unigram, captions):
    return torch.tensor([bpe.encode(c) for c in captions]), torch.tensor([unigram.encode(c) for c in captions])


def encode_captions(clip, t5, bpe, unigram, captions):
    clip_ids, t5_ids = caption_ids(bpe, unigram, captions)
    with torch.no_grad():
        pooled = torch.cat([clip(clip_ids[i:i + 512])[1] for i in range(0, len(captions), 512)])
        hidden = torch.cat([t5(t5_ids[i:i + 512]) for i in range(0, len(captions), 512)])
    return hidden, pooled


# ----------------------------------------------------------------------------------------------- transformer

def trained_modules(seed, clip, t5):
    """The modules the transformer stage trains, under the checkpoint's key names."""
    torch.manual_seed(seed + 2)
    model = FluxTransformer(TRANSFORMER_CONFIG)
    model.init_for_training()
    return torch.nn.ModuleDict({"transformer": model, "clip": clip, "t5": t5})


def train_transformer(args, latents, cap_index, clip_ids, t5_ids, empty, nets, ckpt):
    """Returns the EMA of nets (transformer, clip, t5) after args.steps steps; cap_index[i] is the row of scene i's
    caption in clip_ids / t5_ids, and row `empty` is the empty caption (dropout and the CFG negative)."""
    ema = copy.deepcopy(nets)
    opt = torch.optim.AdamW(nets.parameters(), lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed + 3)
    start = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        nets.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"])
        start = state["step"]
        log(f"resumed transformer at step {start}")
    x0_all = pack_latents(latents)
    n = len(x0_all)
    ids_img = image_ids(LATENT_SIZE, LATENT_SIZE)
    ids_txt = torch.zeros(T5_MAX_LENGTH, 3)
    t0, losses = time.time(), []
    for step in range(start, args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, 300)
        idx = torch.randint(0, n, (args.batch,), generator=g)
        caps = cap_index[idx].clone()
        caps[torch.rand(args.batch, generator=g) < CAPTION_DROPOUT] = empty
        x0 = x0_all[idx]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.sigmoid(torch.randn(args.batch, generator=g))  # logit-normal(0, 1)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        hidden, pooled = nets["t5"](t5_ids[caps]), nets["clip"](clip_ids[caps])[1]
        pred = nets["transformer"](xt, hidden, t, pooled, ids_img, ids_txt)
        loss = F.mse_loss(pred, noise - x0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(nets.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), nets.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        losses.append(loss.item())
        done = step + 1
        if done % 100 == 0 or done == args.steps:
            rate = (time.time() - t0) / (done - start)
            log(f"transformer step {done}/{args.steps} loss {np.mean(losses):.4f} {rate:.3f} s/step eta {(args.steps - done) * rate / 60:.1f} min")
            losses = []
        if done % args.checkpoint_every == 0 or done == args.steps:
            torch.save({"model": nets.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(), "step": done}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    return ema


# ----------------------------------------------------------------------------------------------- sampling

def sample(model, vae, hidden, pooled, neg_hidden, neg_pooled, seeds, steps=STEPS, cfg=CFG_SCALE):
    """Euler on linspace(1, 0, steps + 1) (schnell: no shift), true CFG v = v_neg + s (v_pos - v_neg)."""
    ids_img = image_ids(LATENT_SIZE, LATENT_SIZE)
    ids_txt = torch.zeros(T5_MAX_LENGTH, 3)
    noise = torch.stack([torch.randn(16, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    x = pack_latents(noise)
    b = len(seeds)
    ts = torch.linspace(1, 0, steps + 1)
    with torch.no_grad():
        for k in range(steps):
            t = ts[k].repeat(b)
            v = model(x, hidden, t, pooled, ids_img, ids_txt)
            if cfg != 1:
                v_neg = model(x, neg_hidden.expand_as(hidden), t, neg_pooled.expand_as(pooled), ids_img, ids_txt)
                v = v_neg + cfg * (v - v_neg)
            x = x + (ts[k + 1] - ts[k]) * v
        image = vae.decode_model_latent(unpack_latents(x, LATENT_SIZE, LATENT_SIZE)).clamp(-1, 1)
    return ((image + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def generate_and_score(name, args, model, vae, clip, t5, bpe, unigram, prompts, work):
    hidden, pooled = encode_captions(clip, t5, bpe, unigram, [p["prompt"] for p in prompts])
    neg_hidden, neg_pooled = encode_captions(clip, t5, bpe, unigram, [""])
    images = np.concatenate([sample(model, vae, hidden[i:i + 64], pooled[i:i + 64], neg_hidden, neg_pooled,
                                    [p["seed"] for p in prompts[i:i + 64]], args.sample_steps, args.cfg)
                             for i in range(0, len(prompts), 64)])
    out = f"{work}/{name}.bin"
    images.tofile(out)
    with open(out + ".json", "w") as f:
        json.dump({"size": IMAGE_SIZE, "captions": [p["prompt"] for p in prompts]}, f)
    result = subprocess.run(["npx", "tsx", "tools/train-demo/score.ts", "--images", out], cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------------------------- export

def bf16_state(model):
    return {k: bf16_round(v) for k, v in model.state_dict().items()}


def export(out, vae_state, clip, t5, bpe, unigram, model):
    sizes = {}
    for sub in ["transformer", "vae", "text_encoder", "text_encoder_2", "scheduler"]:
        os.makedirs(f"{out}/{sub}", exist_ok=True)

    def dump(path, obj):
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    dump(f"{out}/model_index.json", MODEL_INDEX)
    dump(f"{out}/scheduler/scheduler_config.json", SCHEDULER_CONFIG)
    dump(f"{out}/transformer/config.json", TRANSFORMER_CONFIG)
    sizes["transformer"] = write_safetensors(f"{out}/transformer/diffusion_pytorch_model.safetensors", model.state_dict())
    # The encoder's log-variance half is unused by the trainer (deterministic latents): export it as a tiny variance.
    vae_state = dict(vae_state)
    lat = VAE_CONFIG["latent_channels"]
    vae_state["encoder.conv_out.weight"] = vae_state["encoder.conv_out.weight"].clone()
    vae_state["encoder.conv_out.bias"] = vae_state["encoder.conv_out.bias"].clone()
    vae_state["encoder.conv_out.weight"][lat:] = 0
    vae_state["encoder.conv_out.bias"][lat:] = -20
    dump(f"{out}/vae/config.json", VAE_CONFIG)
    sizes["vae"] = write_safetensors(f"{out}/vae/diffusion_pytorch_model.safetensors", vae_state)
    dump(f"{out}/text_encoder/config.json", clip.cfg)
    sizes["text_encoder"] = write_safetensors(f"{out}/text_encoder/model.safetensors", clip.state_dict())
    dump(f"{out}/text_encoder_2/config.json", t5.cfg)
    sizes["text_encoder_2"] = write_safetensors(f"{out}/text_encoder_2/model.safetensors", t5.state_dict())
    write_clip_tokenizer(bpe, f"{out}/tokenizer")
    write_t5_tokenizer(unigram, f"{out}/tokenizer_2")
    dump(f"{out}/generation_defaults.json", {
        "num_inference_steps": STEPS, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "true_cfg_scale": CFG_SCALE,
        "negative_prompt": "", "guidance_scale": None, "max_sequence_length": T5_MAX_LENGTH,
    })
    return sizes


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/flux-demo-train")
    ap.add_argument("--out", default=os.path.join(REPO, "public", "models", "flux-demo"))
    ap.add_argument("--count", type=int, default=20000, help="training scenes")
    ap.add_argument("--holdout", type=int, default=500, help="scenes kept out of VAE training for its PSNR")
    ap.add_argument("--vae-steps", type=int, default=1500)
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-crop", type=int, default=32)
    ap.add_argument("--decoder-steps", type=int, default=400)
    ap.add_argument("--decoder-batch", type=int, default=8)
    ap.add_argument("--until-decoder", action="store_true", help="stop after the VAE stages")
    ap.add_argument("--steps", type=int, default=14000)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-only", action="store_true", help="export and score the latest transformer checkpoint")
    ap.add_argument("--sample-steps", type=int, default=STEPS)
    ap.add_argument("--cfg", type=float, default=CFG_SCALE)
    ap.add_argument("--extra-prompts", type=int, default=256, help="random canonical prompts scored besides the fixed set")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    started = time.time()

    scenes = f"{args.work}/scenes-s{args.seed}-n{args.count}.bin"
    if not os.path.exists(scenes + ".json"):
        log("rendering scenes")
        npx_tsx("tools/train-demo/dump-dataset.ts", "--seed", str(args.seed), "--count", str(args.count), "--out", scenes)
    images, captions = load_scenes(scenes)

    log("vae")
    vae_state = train_vae(args, images, f"{args.work}/vae-s{args.seed}.pt")
    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict({k: bf16_round(v) for k, v in vae_state.items()})
    vae.eval()
    latents = encode_latents(vae, images, f"{args.work}/latents-s{args.seed}.pt")
    finetuned = f"{args.work}/vae-finetuned-s{args.seed}.pt"
    if not os.path.exists(finetuned):
        log("vae", vae_report(vae, images, latents, args.holdout), "before the decoder fine-tune")
    vae_state = finetune_decoder(args, vae_state, images, latents, finetuned)
    vae.load_state_dict({k: bf16_round(v) for k, v in vae_state.items()})
    # The held-out decode takes minutes on a busy machine: a resumed run reads the finished VAE's report.
    stats_path = f"{finetuned}.report.json"
    if os.path.exists(stats_path):
        vae_stats = json.load(open(stats_path))
    else:
        vae_stats = vae_report(vae, images, latents, args.holdout)
        json.dump(vae_stats, open(stats_path, "w"))
    log("vae", vae_stats)
    if args.until_decoder:
        return

    eval_path = f"{args.work}/eval-prompts.json"
    npx_tsx("tools/train-demo/dump-dataset.ts", "--eval", "--out", eval_path, "--extra", str(args.extra_prompts))
    eval_sets = json.load(open(eval_path))
    words = caption_words(captions + [p["prompt"] for p in eval_sets["fixed"]])
    bpe, unigram = build_clip_bpe(words), T5Unigram(words)
    clip, t5 = init_text_encoders(args.seed, len(bpe.vocab), len(unigram.pieces))
    unique = sorted(set(captions))
    clip_ids, t5_ids = caption_ids(bpe, unigram, unique + [""])
    where = {c: i for i, c in enumerate(unique)}
    cap_index = torch.tensor([where[c] for c in captions])
    log(f"{len(unique)} distinct captions, words: {' '.join(words)}")

    ckpt = f"{args.work}/transformer-s{args.seed}.pt"
    nets = trained_modules(args.seed, clip, t5)
    if args.export_only:
        state = torch.load(ckpt)
        nets.load_state_dict(state["ema"])
        trained_steps = state["step"]
    else:
        nets = train_transformer(args, latents, cap_index, clip_ids, t5_ids, len(unique), nets, ckpt)
        trained_steps = args.steps
    nets.load_state_dict(bf16_state(nets))
    nets.eval()
    model, clip, t5 = nets["transformer"], nets["clip"], nets["t5"]
    train_minutes = (time.time() - started) / 60

    log("export")
    sizes = export(args.out, vae_state, clip, t5, bpe, unigram, model)
    log("scoring")
    scores = {name: generate_and_score(name, args, model, vae, clip, t5, bpe, unigram, prompts, args.work)
              for name, prompts in eval_sets.items()}
    report = {
        "seed": args.seed, "trained_steps": trained_steps, "wall_minutes_this_run": round(train_minutes, 1),
        "params": {"transformer": count_params(model), "vae": count_params(vae), "text_encoder": count_params(clip),
                   "text_encoder_2": count_params(t5)},
        "file_bytes": sizes, "vae": vae_stats, "sampling": {"steps": args.sample_steps, "true_cfg_scale": args.cfg},
        "scores": scores,
    }
    with open(f"{args.work}/report-s{args.seed}.json", "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
