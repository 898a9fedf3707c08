"""FLUX.1 building blocks for the demo model, written to the diffusers / transformers semantics and parameter
names (so a state_dict is already the exported key layout): FluxTransformer2DModel, AutoencoderKL,
CLIPTextModel and T5EncoderModel. Offline tool only (Debian python3-torch); the product never runs Python.
See docs/flux-architecture.md in the shared references for the exact math each module reproduces."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------- safetensors

def bf16_round(t: torch.Tensor) -> torch.Tensor:
    """float32 -> nearest bfloat16 (round half to even) -> float32, as torch's .to(bfloat16) does."""
    return t.detach().float().to(torch.bfloat16).float()


def write_safetensors(path: str, tensors: dict, dtype: str = "BF16") -> int:
    """Writes tensors (name -> float tensor) as a safetensors file; returns the file size in bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().float().contiguous()
        if dtype == "BF16":
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif dtype == "F32":
            raw = t.numpy().astype("<f4").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)  # align the data section to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    return 8 + len(head) + offset


def read_safetensors(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "I64":
            arr = np.frombuffer(raw, dtype="<i8")
        else:
            raise ValueError(info["dtype"])
        out[name] = torch.from_numpy(arr.copy().reshape(info["shape"]))
    return out


# ----------------------------------------------------------------------------------------------- shared math

def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class RMSNorm(nn.Module):
    """diffusers RMSNorm (FLUX QK norm): x * rsqrt(mean(x^2) + eps) * weight."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def attention(q, k, v, scale, mask=None):
    """q, k, v: [B, heads, L, d]."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask
    return torch.matmul(scores.softmax(-1), v)


# ----------------------------------------------------------------------------------------------- transformer

def timestep_embedding(t, dim=256, max_period=10000):
    """diffusers Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0) on an already-scaled timestep."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbedder(nn.Module):
    """diffusers TimestepEmbedding / PixArtAlphaTextProjection (act silu): linear_1, silu, linear_2."""

    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class TimeTextEmbed(nn.Module):
    def __init__(self, dim, pooled_dim, guidance):
        super().__init__()
        self.timestep_embedder = MLPEmbedder(256, dim)
        if guidance:
            self.guidance_embedder = MLPEmbedder(256, dim)
        self.text_embedder = MLPEmbedder(pooled_dim, dim)

    def forward(self, timestep, pooled, guidance=None):
        temb = self.timestep_embedder(timestep_embedding(timestep))
        if guidance is not None:
            temb = temb + self.guidance_embedder(timestep_embedding(guidance))
        return temb + self.text_embedder(pooled)


def rope_tables(ids, axes_dim, theta=10000.0):
    """ids [L, 3] -> cos, sin [L, head_dim], each frequency repeated twice (interleaved pairs); float64 math."""
    cos, sin = [], []
    for i, d in enumerate(axes_dim):
        freqs = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        angles = torch.outer(ids[:, i].double(), freqs)
        cos.append(angles.cos().repeat_interleave(2, dim=1))
        sin.append(angles.sin().repeat_interleave(2, dim=1))
    return torch.cat(cos, 1).float(), torch.cat(sin, 1).float()


def apply_rope(x, cos, sin):
    """x [B, heads, L, d]; interleaved-pair rotation (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos)."""
    x0, x1 = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    rotated = torch.stack([-x1, x0], dim=-1).flatten(-2)
    return x * cos + rotated * sin


class FeedForward(nn.Module):
    """diffusers FeedForward(activation_fn='gelu-tanh'): net.0.proj, (net.1 dropout), net.2."""

    def __init__(self, dim, inner):
        super().__init__()
        proj = nn.Module()
        proj.proj = nn.Linear(dim, inner)
        self.net = nn.ModuleList([proj, nn.Identity(), nn.Linear(inner, dim)])

    def forward(self, x):
        return self.net[2](gelu_tanh(self.net[0].proj(x)))


class AdaNorm(nn.Module):
    """AdaLayerNormZero / AdaLayerNormZeroSingle / AdaLayerNormContinuous: linear(silu(temb)) chunks."""

    def __init__(self, dim, chunks):
        super().__init__()
        self.linear = nn.Linear(dim, chunks * dim)
        self.chunks = chunks

    def forward(self, temb):
        return self.linear(F.silu(temb))[:, None, :].chunk(self.chunks, dim=-1)


def layer_norm(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


class JointAttention(nn.Module):
    def __init__(self, dim, heads, head_dim, context):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_q, self.norm_k = RMSNorm(head_dim), RMSNorm(head_dim)
        if context:
            self.add_q_proj, self.add_k_proj, self.add_v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.norm_added_q, self.norm_added_k = RMSNorm(head_dim), RMSNorm(head_dim)
            self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Identity()])
            self.to_add_out = nn.Linear(dim, dim)

    def split(self, x):
        b, l, _ = x.shape
        return x.view(b, l, self.heads, self.head_dim).transpose(1, 2)

    def qkv(self, x, to_q, to_k, to_v, norm_q, norm_k):
        return norm_q(self.split(to_q(x))), norm_k(self.split(to_k(x))), self.split(to_v(x))

    def forward(self, x, rope, ctx=None):
        q, k, v = self.qkv(x, self.to_q, self.to_k, self.to_v, self.norm_q, self.norm_k)
        if ctx is not None:  # text first
            cq, ck, cv = self.qkv(ctx, self.add_q_proj, self.add_k_proj, self.add_v_proj, self.norm_added_q, self.norm_added_k)
            q, k, v = torch.cat([cq, q], 2), torch.cat([ck, k], 2), torch.cat([cv, v], 2)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        o = attention(q, k, v, self.head_dim ** -0.5)
        o = o.transpose(1, 2).reshape(x.shape[0], -1, self.heads * self.head_dim)
        if ctx is None:
            return o
        lt = ctx.shape[1]
        return self.to_out[0](o[:, lt:]), self.to_add_out(o[:, :lt])


class DoubleBlock(nn.Module):
    """diffusers FluxTransformerBlock."""

    def __init__(self, dim, heads, head_dim, mlp_ratio=4.0):
        super().__init__()
        self.norm1, self.norm1_context = AdaNorm(dim, 6), AdaNorm(dim, 6)
        self.attn = JointAttention(dim, heads, head_dim, context=True)
        self.ff = FeedForward(dim, int(dim * mlp_ratio))
        self.ff_context = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x, ctx, temb, rope):
        sh1, sc1, g1, sh2, sc2, g2 = self.norm1(temb)
        csh1, csc1, cg1, csh2, csc2, cg2 = self.norm1_context(temb)
        a, ca = self.attn(layer_norm(x) * (1 + sc1) + sh1, rope, layer_norm(ctx) * (1 + csc1) + csh1)
        x = x + g1 * a
        x = x + g2 * self.ff(layer_norm(x) * (1 + sc2) + sh2)
        ctx = ctx + cg1 * ca
        ctx = ctx + cg2 * self.ff_context(layer_norm(ctx) * (1 + csc2) + csh2)
        return x, ctx


class SingleBlock(nn.Module):
    """diffusers FluxSingleTransformerBlock."""

    def __init__(self, dim, heads, head_dim, mlp_ratio=4.0):
        super().__init__()
        mlp = int(dim * mlp_ratio)
        self.norm = AdaNorm(dim, 3)
        self.proj_mlp = nn.Linear(dim, mlp)
        self.attn = JointAttention(dim, heads, head_dim, context=False)
        self.proj_out = nn.Linear(dim + mlp, dim)

    def forward(self, x, temb, rope):
        shift, scale, gate = self.norm(temb)
        h = layer_norm(x) * (1 + scale) + shift
        out = torch.cat([self.attn(h, rope), gelu_tanh(self.proj_mlp(h))], dim=-1)
        return x + gate * self.proj_out(out)


class FluxTransformer(nn.Module):
    """diffusers FluxTransformer2DModel (patch_size 1: tokens are packed 2x2 latent patches)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        heads, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
        dim = heads * hd
        self.x_embedder = nn.Linear(cfg["in_channels"], dim)
        self.context_embedder = nn.Linear(cfg["joint_attention_dim"], dim)
        self.time_text_embed = TimeTextEmbed(dim, cfg["pooled_projection_dim"], cfg["guidance_embeds"])
        self.transformer_blocks = nn.ModuleList([DoubleBlock(dim, heads, hd) for _ in range(cfg["num_layers"])])
        self.single_transformer_blocks = nn.ModuleList([SingleBlock(dim, heads, hd) for _ in range(cfg["num_single_layers"])])
        self.norm_out = AdaNorm(dim, 2)
        self.proj_out = nn.Linear(dim, cfg["in_channels"])

    def init_for_training(self):
        """DiT-style: modulation and output layers start at zero, so every block starts as the identity."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, AdaNorm):
                nn.init.zeros_(m.linear.weight)
                nn.init.zeros_(m.linear.bias)
        nn.init.zeros_(self.proj_out.weight)

    def forward(self, img, txt, t, pooled, img_ids, txt_ids, guidance=None, return_streams=False):
        """img [B, Li, 64], txt [B, Lt, joint], t [B] in [0, 1], pooled [B, pooled]; ids [L*, 3]."""
        x = self.x_embedder(img)
        temb = self.time_text_embed(t * 1000, pooled, None if guidance is None else guidance * 1000)
        ctx = self.context_embedder(txt)
        rope = rope_tables(torch.cat([txt_ids, img_ids], 0), self.cfg["axes_dims_rope"])
        streams = {}
        for i, block in enumerate(self.transformer_blocks):
            x, ctx = block(x, ctx, temb, rope)
            streams[f"double_blocks.{i}.img"], streams[f"double_blocks.{i}.txt"] = x, ctx
        h = torch.cat([ctx, x], 1)
        for i, block in enumerate(self.single_transformer_blocks):
            h = block(h, temb, rope)
            streams[f"single_blocks.{i}.out"] = h
        x = h[:, ctx.shape[1]:]
        scale, shift = self.norm_out(temb)  # diffusers AdaLayerNormContinuous: scale first
        out = self.proj_out(layer_norm(x) * (1 + scale) + shift)
        return (out, streams) if return_streams else out


def pack_latents(z):
    """[B, 16, h, w] -> [B, (h/2)(w/2), 64], feature = c*4 + dy*2 + dx."""
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(x, h, w):
    b, _, f = x.shape
    c = f // 4
    return x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def image_ids(h, w):
    """(0, row, col) for each packed token of an [h, w] latent."""
    r, c = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
    return torch.stack([torch.zeros_like(r), r, c], -1).reshape(-1, 3).float()


# ----------------------------------------------------------------------------------------------- VAE

def group_norm(c):
    return nn.GroupNorm(32, c, eps=1e-6)


class Resnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.conv_shortcut(x) if hasattr(self, "conv_shortcut") else x
        return skip + h


class VaeAttention(nn.Module):
    """diffusers Attention in the VAE mid block: one head over all pixels, residual."""

    def __init__(self, c):
        super().__init__()
        self.group_norm = group_norm(c)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Identity()])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        o = attention(self.to_q(t)[:, None], self.to_k(t)[:, None], self.to_v(t)[:, None], c ** -0.5)[:, 0]
        return x + self.to_out[0](o).transpose(1, 2).reshape(b, c, h, w)


class MidBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(c, c), Resnet(c, c)])
        self.attentions = nn.ModuleList([VaeAttention(c)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, channels, layers, latent):
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cin = channels[0]
        for i, c in enumerate(channels):
            block = nn.Module()
            block.resnets = nn.ModuleList([Resnet(cin if j == 0 else c, c) for j in range(layers)])
            if i < len(channels) - 1:
                block.downsamplers = nn.ModuleList([Downsample(c)])
            self.down_blocks.append(block)
            cin = c
        self.mid_block = MidBlock(cin)
        self.conv_norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, 2 * latent, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            for r in block.resnets:
                x = r(x)
            if hasattr(block, "downsamplers"):
                x = block.downsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, channels, layers, latent):
        super().__init__()
        rev = list(reversed(channels))
        self.conv_in = nn.Conv2d(latent, rev[0], 3, padding=1)
        self.mid_block = MidBlock(rev[0])
        self.up_blocks = nn.ModuleList()
        cin = rev[0]
        for i, c in enumerate(rev):
            block = nn.Module()
            block.resnets = nn.ModuleList([Resnet(cin if j == 0 else c, c) for j in range(layers + 1)])
            if i < len(rev) - 1:
                block.upsamplers = nn.ModuleList([Upsample(c)])
            self.up_blocks.append(block)
            cin = c
        self.conv_norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            for r in block.resnets:
                x = r(x)
            if hasattr(block, "upsamplers"):
                x = block.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    """diffusers AutoencoderKL without quant_conv / post_quant_conv (as FLUX's VAE)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch, layers, lat = cfg["block_out_channels"], cfg["layers_per_block"], cfg["latent_channels"]
        self.encoder = Encoder(ch, layers, lat)
        self.decoder = Decoder(ch, layers, lat)

    def encode_mean(self, x):
        return self.encoder(x)[:, : self.cfg["latent_channels"]]

    def to_model_latent(self, mean):
        return (mean - self.cfg["shift_factor"]) * self.cfg["scaling_factor"]

    def decode_model_latent(self, z):
        return self.decoder(z / self.cfg["scaling_factor"] + self.cfg["shift_factor"])


# ----------------------------------------------------------------------------------------------- CLIP text

class ClipLayer(nn.Module):
    def __init__(self, dim, heads, inner):
        super().__init__()
        self.heads = heads
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        attn = nn.Module()
        attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.self_attn = attn
        mlp = nn.Module()
        mlp.fc1, mlp.fc2 = nn.Linear(dim, inner), nn.Linear(inner, dim)
        self.mlp = mlp

    def forward(self, x, mask):
        b, l, d = x.shape
        hd = d // self.heads
        h = self.layer_norm1(x)
        split = lambda t: t.view(b, l, self.heads, hd).transpose(1, 2)
        a = self.self_attn
        o = attention(split(a.q_proj(h)), split(a.k_proj(h)), split(a.v_proj(h)), hd ** -0.5, mask)
        x = x + a.out_proj(o.transpose(1, 2).reshape(b, l, d))
        h = self.mlp.fc1(self.layer_norm2(x))
        return x + self.mlp.fc2(h * torch.sigmoid(1.702 * h))


class ClipTextModel(nn.Module):
    """transformers CLIPTextModel (no projection): returns (last_hidden_state, pooled at the first EOS)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg["hidden_size"]
        tm = nn.Module()
        emb = nn.Module()
        emb.token_embedding = nn.Embedding(cfg["vocab_size"], d)
        emb.position_embedding = nn.Embedding(cfg["max_position_embeddings"], d)
        tm.embeddings = emb
        enc = nn.Module()
        enc.layers = nn.ModuleList([ClipLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"]) for _ in range(cfg["num_hidden_layers"])])
        tm.encoder = enc
        tm.final_layer_norm = nn.LayerNorm(d, eps=1e-5)
        self.text_model = tm

    def forward(self, ids):
        tm = self.text_model
        l = ids.shape[1]
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(torch.arange(l))[None]
        mask = torch.full((l, l), float("-inf")).triu(1)
        for layer in tm.encoder.layers:
            x = layer(x, mask)
        x = tm.final_layer_norm(x)
        eos = (ids == self.cfg["eos_token_id"]).int().argmax(-1)
        return x, x[torch.arange(ids.shape[0]), eos]


# ----------------------------------------------------------------------------------------------- T5 encoder

def t5_bucket(rel, num_buckets=32, max_distance=128):
    """Bidirectional relative-position bucket (transformers T5Attention._relative_position_bucket)."""
    half = num_buckets // 2
    ret = (rel > 0).long() * half
    n = rel.abs()
    max_exact = half // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return ret + torch.where(is_small, n, large)


class T5Norm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class T5Block(nn.Module):
    def __init__(self, cfg, has_bias):
        super().__init__()
        d, inner, ff = cfg["d_model"], cfg["num_heads"] * cfg["d_kv"], cfg["d_ff"]
        sa = nn.Module()
        sa.q, sa.k, sa.v = (nn.Linear(d, inner, bias=False) for _ in range(3))
        sa.o = nn.Linear(inner, d, bias=False)
        if has_bias:
            sa.relative_attention_bias = nn.Embedding(cfg["relative_attention_num_buckets"], cfg["num_heads"])
        l0 = nn.Module()
        l0.SelfAttention, l0.layer_norm = sa, T5Norm(d, cfg["layer_norm_epsilon"])
        drd = nn.Module()
        drd.wi_0, drd.wi_1 = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
        drd.wo = nn.Linear(ff, d, bias=False)
        l1 = nn.Module()
        l1.DenseReluDense, l1.layer_norm = drd, T5Norm(d, cfg["layer_norm_epsilon"])
        self.layer = nn.ModuleList([l0, l1])
        self.heads, self.dkv = cfg["num_heads"], cfg["d_kv"]

    def forward(self, x, bias):
        b, l, _ = x.shape
        sa = self.layer[0].SelfAttention
        h = self.layer[0].layer_norm(x)
        split = lambda t: t.view(b, l, self.heads, self.dkv).transpose(1, 2)
        o = attention(split(sa.q(h)), split(sa.k(h)), split(sa.v(h)), 1.0, bias)
        x = x + sa.o(o.transpose(1, 2).reshape(b, l, -1))
        drd = self.layer[1].DenseReluDense
        h = self.layer[1].layer_norm(x)
        return x + drd.wo(gelu_tanh(drd.wi_0(h)) * drd.wi_1(h))


class T5Encoder(nn.Module):
    """transformers T5EncoderModel (v1.1, gated-gelu): returns last_hidden_state."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        enc = nn.Module()
        enc.block = nn.ModuleList([T5Block(cfg, i == 0) for i in range(cfg["num_layers"])])
        enc.final_layer_norm = T5Norm(cfg["d_model"], cfg["layer_norm_epsilon"])
        self.encoder = enc

    def forward(self, ids):
        l = ids.shape[1]
        pos = torch.arange(l)
        buckets = t5_bucket(pos[None, :] - pos[:, None], self.cfg["relative_attention_num_buckets"], self.cfg["relative_attention_max_distance"])
        bias = self.encoder.block[0].layer[0].SelfAttention.relative_attention_bias(buckets).permute(2, 0, 1)[None]
        x = self.shared(ids)
        for block in self.encoder.block:
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)
