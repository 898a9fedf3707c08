"""Tokenizer files for the demo model, built over the caption vocabulary, in the formats FLUX's folders use:
tokenizer/ (CLIP byte-level BPE: vocab.json + merges.txt) and tokenizer_2/ (T5 Unigram: tokenizer.json).
Also the matching Python encoders the trainer uses, so the training ids are exactly what the files produce."""
import json
import math
import os
import re

CLIP_MAX_LENGTH = 77
# T5 sequence length the demo model is trained at (FLUX.1-schnell uses 256; our captions need at most 13 tokens,
# text tokens dominate the transformer's cost here, and padding participates in attention, so inference must use
# the same length: see generation_defaults.json "max_sequence_length").
T5_MAX_LENGTH = 16

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable unicode table (same order as CLIP's vocab starts with)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


CLIP_PATTERN = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+""", re.IGNORECASE)


def clip_clean(text):
    return re.sub(r"\s+", " ", text).strip().lower()


class ClipBpe:
    def __init__(self, merges):
        self.byte_encoder = bytes_to_unicode()
        base = list(self.byte_encoder.values())
        vocab = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + [BOS, EOS]
        self.vocab = {tok: i for i, tok in enumerate(vocab)}
        self.merges = merges
        self.ranks = {m: i for i, m in enumerate(merges)}

    def bpe(self, word):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, _ = min(pairs)
            if rank == math.inf:
                break
            pair = self.merges[rank]
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def tokens(self, text):
        out = []
        for piece in CLIP_PATTERN.findall(clip_clean(text)):
            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            out += self.bpe(word)
        return out

    def encode(self, text):
        """[BOS] + tokens[:75] + [EOS], padded with EOS to 77 (CLIP-L's pad token is <|endoftext|>)."""
        ids = [self.vocab[t] for t in self.tokens(text)][: CLIP_MAX_LENGTH - 2]
        ids = [self.vocab[BOS]] + ids + [self.vocab[EOS]]
        return ids + [self.vocab[EOS]] * (CLIP_MAX_LENGTH - len(ids))


def build_clip_bpe(words):
    """Merges that make every caption word a single token: append (first two parts) until the word is whole."""
    bpe = ClipBpe([])
    for w in words:
        while True:
            parts = bpe.bpe(w)
            if len(parts) == 1:
                break
            bpe = ClipBpe(bpe.merges + [(parts[0], parts[1])])
    for w in words:
        assert len(bpe.bpe(w)) == 1, w
    return bpe


SPIECE = "\u2581"
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]
T5_WORD_SCORE = -2.0
T5_CHAR_SCORE = -10.0  # single characters only for words outside the caption vocabulary


class T5Unigram:
    def __init__(self, words):
        pieces = [(SPIECE + w, T5_WORD_SCORE) for w in words]
        chars = sorted(set("".join(words)) | set("abcdefghijklmnopqrstuvwxyz,.") )
        pieces += [(SPIECE, T5_CHAR_SCORE)] + [(c, T5_CHAR_SCORE) for c in chars]
        self.pieces = [(s, 0.0) for s in T5_SPECIALS] + pieces
        self.ids = {p: i for i, (p, _) in enumerate(self.pieces)}
        self.scores = dict(self.pieces)
        self.unk_score = min(s for _, s in pieces) - 10.0

    def encode_word(self, word):
        """Viterbi over the pieces (unknown characters become <unk>)."""
        n = len(word)
        best = [(-math.inf, None)] * (n + 1)
        best[0] = (0.0, None)
        for end in range(1, n + 1):
            for start in range(end):
                piece = word[start:end]
                if piece in self.ids and piece not in T5_SPECIALS:
                    score = self.scores[piece]
                elif end - start == 1:
                    score = self.unk_score
                else:
                    continue
                cand = best[start][0] + score
                if cand > best[end][0]:
                    best[end] = (cand, start)
        ids, end = [], n
        while end > 0:
            start = best[end][1]
            piece = word[start:end]
            ids.append(self.ids.get(piece, 2) if piece not in T5_SPECIALS else 2)
            end = start
        return ids[::-1]

    def encode(self, text):
        ids = []
        for w in text.lower().split():
            ids += self.encode_word(SPIECE + w)
        ids = ids[: T5_MAX_LENGTH - 1] + [1]
        return ids + [0] * (T5_MAX_LENGTH - len(ids))

    def tokenizer_json(self):
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
                 for i, s in enumerate(T5_SPECIALS)]
        return {
            "version": "1.0",
            "truncation": {"direction": "Right", "max_length": T5_MAX_LENGTH, "strategy": "LongestFirst", "stride": 0},
            "padding": {"strategy": {"Fixed": T5_MAX_LENGTH}, "direction": "Right", "pad_to_multiple_of": None,
                        "pad_id": 0, "pad_type_id": 0, "pad_token": "<pad>"},
            "added_tokens": added,
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Metaspace", "replacement": SPIECE, "add_prefix_space": True, "prepend_scheme": "always", "split": True}]},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
            "decoder": {"type": "Metaspace", "replacement": SPIECE, "add_prefix_space": True, "prepend_scheme": "always", "split": True},
            "model": {"type": "Unigram", "unk_id": 2, "vocab": [[p, s] for p, s in self.pieces], "byte_fallback": False},
        }


def caption_words(captions):
    words = set()
    for c in captions:
        words |= set(re.findall(r"[a-z]+", c.lower()))
    return sorted(words)


def clip_tokenizer_json(bpe):
    """The same tokenizer in the fast-tokenizer format (CLIPTokenizerFast), for tokenizer libraries that need it."""
    bos, eos = bpe.vocab[BOS], bpe.vocab[EOS]
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": True}
             for i, s in ((bos, BOS), (eos, EOS))]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOS, eos], "cls": [BOS, bos], "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": EOS, "continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
                  "fuse_unk": False, "byte_fallback": False, "vocab": bpe.vocab, "merges": [f"{a} {b}" for a, b in bpe.merges]},
    }


def write_clip_tokenizer(bpe, folder):
    os.makedirs(folder, exist_ok=True)
    with open(f"{folder}/vocab.json", "w") as f:
        json.dump(bpe.vocab, f, ensure_ascii=False)
    with open(f"{folder}/merges.txt", "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in bpe.merges))
    with open(f"{folder}/tokenizer.json", "w") as f:
        json.dump(clip_tokenizer_json(bpe), f, ensure_ascii=False)
    specials = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    with open(f"{folder}/special_tokens_map.json", "w") as f:
        json.dump(specials, f, indent=2)
    with open(f"{folder}/tokenizer_config.json", "w") as f:
        json.dump({"add_prefix_space": False, "clean_up_tokenization_spaces": True, "do_lower_case": True, "errors": "replace",
                   "model_max_length": CLIP_MAX_LENGTH, "tokenizer_class": "CLIPTokenizer", **specials}, f, indent=2)


def write_t5_tokenizer(t5, folder):
    os.makedirs(folder, exist_ok=True)
    with open(f"{folder}/tokenizer.json", "w") as f:
        json.dump(t5.tokenizer_json(), f, ensure_ascii=False, indent=1)
    specials = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    with open(f"{folder}/special_tokens_map.json", "w") as f:
        json.dump(specials, f, indent=2)
    with open(f"{folder}/tokenizer_config.json", "w") as f:
        json.dump({"model_max_length": T5_MAX_LENGTH, "tokenizer_class": "T5Tokenizer", "extra_ids": 0, **specials}, f, indent=2)
