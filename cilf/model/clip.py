"""CLIP encoders over open_clip (docs/method.md, section 1).

``CLIPAdapter`` wraps any open_clip ViT model and gives
- ``encode_image(images)`` -> :class:`ImageFeatures`: pooled embedding v (B x D) and patch tokens
  projected into the joint space P (B x N x D), with the tower's final norm and projection
  applied to the tokens as MaskCLIP/DenseCLIP do; the same split at a block boundary
  (``encode_to_block`` then ``encode_from_block``), so the frozen part can be cached;
- ``class_text_features()`` -> T (K x D), one L2-normalised text feature per age class, the
  average of several prompt templates (fixed prompts) or CoOp-style learned context tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from cilf.model.config import CILFConfig

TEXT_BATCH = 64  # prompts per text-tower pass


@dataclass
class ImageFeatures:
    """Encoder outputs for a batch: ``pooled`` v (B x D), ``tokens`` P (B x N x D), grid (H, W)."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    grid: tuple[int, int]

    def to(self, device: torch.device | str) -> ImageFeatures:
        return ImageFeatures(self.pooled.to(device), self.tokens.to(device), self.grid)

    def __getitem__(self, idx) -> ImageFeatures:
        return ImageFeatures(self.pooled[idx], self.tokens[idx], self.grid)

    def __len__(self) -> int:
        return self.pooled.shape[0]


@dataclass
class BoundaryTokens:
    """Image-tower tokens entering block ``block``: ``tokens`` B x (1 + N) x W (class token first), as
    :meth:`CLIPAdapter.encode_to_block` gives them; :meth:`CLIPAdapter.encode_from_block` finishes them."""

    tokens: torch.Tensor
    block: int

    def to(self, device: torch.device | str) -> BoundaryTokens:
        return BoundaryTokens(self.tokens.to(device), self.block)

    def __getitem__(self, idx) -> BoundaryTokens:
        return BoundaryTokens(self.tokens[idx], self.block)

    def __len__(self) -> int:
        return self.tokens.shape[0]


@dataclass
class OpenCLIPParts:
    """What :class:`CLIPAdapter` wraps, as ``cilf.persist.factory.load_open_clip`` builds it: the open_clip
    model, its eval transform (PIL image -> 3 x S x S), its tokenizer, and the record of the weights loaded."""

    model: nn.Module
    preprocess: object
    tokenizer: object
    weights: object  # cilf.persist.clip_weights.WeightsRecord


class PromptLearner(nn.Module):
    """CoOp-style learned context: ``[SOS] ctx_1..ctx_n {age}-year-old person. [EOS]``.

    The n context vectors are shared by all classes and initialised from "a photo of a".
    """

    def __init__(self, clip_model: nn.Module, tokenizer, *, ages: list[int], n_ctx: int):
        super().__init__()
        placeholder = " ".join(["X"] * n_ctx)
        tokens = tokenizer([f"{placeholder} {a}-year-old person." for a in ages])
        init = tokenizer(["a photo of a"])[0, 1 : 1 + n_ctx]
        with torch.no_grad():
            embed = clip_model.token_embedding(tokens)
            ctx = clip_model.token_embedding(init).clone()
            if ctx.shape[0] < n_ctx:  # more context than init words: pad with small noise
                extra = torch.randn(n_ctx - ctx.shape[0], ctx.shape[1]) * 0.02
                ctx = torch.cat([ctx, extra])
        self.ctx = nn.Parameter(ctx)  # n_ctx x W
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("prefix", embed[:, :1], persistent=False)
        self.register_buffer("suffix", embed[:, 1 + n_ctx :], persistent=False)
        self.n_ctx = n_ctx

    def forward(self) -> torch.Tensor:
        """Token embeddings K x L x W with the learned context inserted."""
        k = self.prefix.shape[0]
        return torch.cat([self.prefix, self.ctx.unsqueeze(0).expand(k, -1, -1), self.suffix], dim=1)


class CLIPAdapter(nn.Module):
    """open_clip image and text towers with dense tokens and age-class text features."""

    def __init__(self, cfg: CILFConfig, parts: OpenCLIPParts):
        super().__init__()
        self.cfg = cfg
        self.model, self.preprocess, self.tokenizer, self.weights = (
            parts.model,
            parts.preprocess,
            parts.tokenizer,
            parts.weights,
        )
        visual = self.model.visual
        if not isinstance(visual, open_clip.transformer.VisionTransformer):
            raise NotImplementedError(
                f"{cfg.clip_model}: dense pixel-text maps need a ViT image tower; "
                f"{type(visual).__name__} is not supported. Pick a ViT-* model."
            )
        if visual.attn_pool is not None:
            raise NotImplementedError(f"{cfg.clip_model}: attention-pooled towers have no patch tokens")
        if not hasattr(self.model, "token_embedding"):
            raise NotImplementedError(f"{cfg.clip_model}: only open_clip's built-in text tower is supported")
        self.grid = tuple(visual.grid_size)
        self.embed_dim = int(self.model.text_projection.shape[-1]) if self.model.text_projection is not None else None
        self._freeze(cfg)
        self.prompt_learner = (
            PromptLearner(self.model, self.tokenizer, ages=cfg.ages, n_ctx=cfg.n_ctx)
            if cfg.prompts == "learned"
            else None
        )
        self._text_cache: torch.Tensor | None = None
        self._record_trainable()

    # -- set-up ------------------------------------------------------------------------------
    def _freeze(self, cfg: CILFConfig) -> None:
        """Everything frozen but what ``cfg`` asks to train: ``freeze_image=False`` the whole image tower,
        ``unfreeze_last_blocks`` = k its last k blocks + ln_post + proj; ``freeze_text=False`` the whole text
        tower, ``unfreeze_text_blocks`` = n its last n blocks + ln_final + text projection."""
        m = self.model
        for p in m.parameters():
            p.requires_grad_(False)
        for field, n, blocks in (
            ("unfreeze_last_blocks", cfg.unfreeze_last_blocks, m.visual.transformer.resblocks),
            ("unfreeze_text_blocks", cfg.unfreeze_text_blocks, m.transformer.resblocks),
        ):
            if n > len(blocks):
                raise ValueError(f"{field}={n}, but {cfg.clip_model} has {len(blocks)} blocks in that tower")
        n = cfg.unfreeze_last_blocks
        if not cfg.freeze_image:
            m.visual.requires_grad_(True)
        elif n > 0:
            for blk in m.visual.transformer.resblocks[len(m.visual.transformer.resblocks) - n :]:
                blk.requires_grad_(True)
            m.visual.ln_post.requires_grad_(True)
            if m.visual.proj is not None:
                m.visual.proj.requires_grad_(True)
        n = cfg.unfreeze_text_blocks
        if not cfg.freeze_text:
            for name, p in m.named_parameters():
                if not name.startswith("visual."):
                    p.requires_grad_(True)
        elif n > 0:
            for blk in m.transformer.resblocks[len(m.transformer.resblocks) - n :]:
                blk.requires_grad_(True)
            m.ln_final.requires_grad_(True)
            if isinstance(m.text_projection, nn.Parameter):
                m.text_projection.requires_grad_(True)
        m.logit_scale.requires_grad_(False)

    def _record_trainable(self) -> None:
        """Which towers train is fixed at construction; look it up once, not on every forward."""
        visual = {id(p) for p in self.model.visual.parameters()}
        self.image_trainable = any(p.requires_grad for p in self.model.visual.parameters())
        self.text_trainable = self.prompt_learner is not None or any(
            p.requires_grad for p in self.model.parameters() if id(p) not in visual
        )

    @property
    def tuned(self) -> bool:
        """Whether training changes what the prompts read: a trainable tower, or learned prompts."""
        return self.image_trainable or self.text_trainable

    # -- image tower -------------------------------------------------------------------------
    # conv1 -> class/positional embedding -> ln_pre -> blocks 0..L-1 -> ln_post -> proj, split at a block
    # boundary b: encode_to_block(images, b) gives the tokens entering block b, encode_from_block runs the
    # rest. ``boundary`` is where the frozen part ends, so a cache of encode_to_block's tokens is exact.
    @property
    def image_blocks(self) -> int:
        """L, the number of transformer blocks of the image tower."""
        return len(self.model.visual.transformer.resblocks)

    @property
    def boundary(self) -> int:
        """The first trainable image block: L for a frozen tower, L - k for ``unfreeze_last_blocks`` = k,
        0 when the whole tower trains (``freeze_image=False``; the stem trains too)."""
        if not self.cfg.freeze_image:
            return 0
        return self.image_blocks - self.cfg.unfreeze_last_blocks

    def _check_block(self, block: int | None) -> int:
        block = self.boundary if block is None else int(block)
        if not 0 <= block <= self.image_blocks:
            raise ValueError(
                f"block {block} is not a boundary of the {self.image_blocks}-block image tower (0..{self.image_blocks})"
            )
        return block

    def _run_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Image blocks start..stop-1 on batch-first tokens B x T x W (as open_clip's Transformer runs them)."""
        t = self.model.visual.transformer
        if start == stop:
            return x
        if start == 0 and stop == len(t.resblocks):  # the whole stack: open_clip's own forward (hooks, checkpointing)
            return t(x)
        if not t.batch_first:
            x = x.transpose(0, 1).contiguous()
        for blk in t.resblocks[start:stop]:
            x = blk(x, attn_mask=None)
        return x if t.batch_first else x.transpose(0, 1)

    def encode_to_block(self, images: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """images B x 3 x S x S (normalised) -> tokens B x (1 + N) x W entering image block ``block``
        (default ``boundary``; class token first). No gradient unless the stem itself trains."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images B x 3 x H x W, got shape {tuple(images.shape)}")
        block = self._check_block(block)
        v = self.model.visual
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.freeze_image):
            return self._run_blocks(v._embeds(images), 0, block)

    def encode_from_block(self, tokens: torch.Tensor, block: int | None = None) -> ImageFeatures:
        """Tokens B x (1 + N) x W entering image block ``block`` (default ``boundary``) -> ImageFeatures
        (v: B x D, P: B x N x D): the remaining blocks, ln_post and proj."""
        block = self._check_block(block)
        v = self.model.visual
        if tokens.ndim != 3 or tokens.shape[-1] != v.transformer.width:
            raise ValueError(f"expected block tokens B x T x {v.transformer.width}, got shape {tuple(tokens.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.image_trainable):
            x = self._run_blocks(tokens.to(v.conv1.weight.dtype), block, self.image_blocks)
            pooled, tokens = v._pool(x)
            if v.final_ln_after_pool:
                tokens = v.ln_post(tokens)
            if v.proj is not None:
                pooled = pooled @ v.proj
                tokens = tokens @ v.proj
        return ImageFeatures(pooled, tokens, self.grid)

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """images B x 3 x S x S (normalised) -> ImageFeatures(v: B x D, P: B x N x D)."""
        return self.encode_from_block(self.encode_to_block(images))

    # -- text tower --------------------------------------------------------------------------
    def _encode_token_embeddings(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mirror of open_clip CLIP.encode_text after the token embedding: L x W -> D."""
        m = self.model
        cast = m.transformer.get_cast_dtype()
        x = x.to(cast) + m.positional_embedding.to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask)
        x = m.ln_final(x)
        x = open_clip.transformer.text_global_pool(
            x, tokens, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None)
        )
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection
        return x

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """A list of n strings -> n x D text features (not normalised)."""
        device = self.model.logit_scale.device
        tokens = self.tokenizer(texts).to(device)
        x = self.model.token_embedding(tokens)
        return self._encode_token_embeddings(x, tokens)

    def class_prompts(self) -> list[list[str]]:
        """The prompt strings, K lists of len(templates)."""
        return [[t.format(age=a) for t in self.cfg.templates] for a in self.cfg.ages]

    def class_text_features(self, progress: bool = False) -> torch.Tensor:
        """T: K x D, L2-normalised, one feature per age class (template ensemble or learned).

        Fixed prompts are encoded TEXT_BATCH at a time; ``progress``: a bar (stderr) when there are
        more than that (404 prompts by default: a minute for a ViT-B-16 on a CPU)."""
        if self.prompt_learner is not None:
            pl = self.prompt_learner
            return F.normalize(self._encode_token_embeddings(pl(), pl.tokens), dim=-1)
        if self._text_cache is not None and not self.text_trainable:
            return self._text_cache
        prompts = self.class_prompts()
        k, m = len(prompts), len(prompts[0])
        flat = [p for group in prompts for p in group]
        # The cache must not depend on where it is first filled: not an inference tensor (predict runs
        # under inference mode; training the same model later saves it for backward), not bfloat16
        # (a bf16 training step's autocast; float32 evaluation reads it afterwards).
        grad = torch.is_grad_enabled() and self.text_trainable
        device_type = self.model.logit_scale.device.type
        starts = range(0, len(flat), TEXT_BATCH)
        bar = tqdm(
            starts, desc="encode prompts", unit="batch", leave=False, disable=not progress or len(flat) <= TEXT_BATCH
        )
        with torch.inference_mode(False), torch.set_grad_enabled(grad), torch.autocast(device_type, enabled=False):
            feats = torch.cat([self.encode_text(flat[i : i + TEXT_BATCH]) for i in bar])
            feats = F.normalize(feats, dim=-1).view(k, m, -1).mean(dim=1)
            feats = F.normalize(feats, dim=-1)
        if not self.text_trainable:
            self._text_cache = feats.detach()
        return feats

    def warm_text_cache(self, progress: bool = False) -> None:
        """Encode the frozen fixed prompts now (cached for every later step), with a bar if ``progress``."""
        if self.prompt_learner is None and not self.text_trainable and self._text_cache is None:
            with torch.no_grad():
                self.class_text_features(progress=progress)

    def adopt_text_cache(self, other: CLIPAdapter) -> bool:
        """Take ``other``'s encoded fixed prompts (K x D) instead of encoding them again, when both text
        towers are frozen with fixed prompts, the prompts are the same and so are the text weights (a
        cross-fitting fold model of the same config and seed, say). Returns whether it did."""
        cache = other._text_cache
        if (
            cache is None
            or self._text_cache is not None
            or self.prompt_learner is not None
            or self.text_trainable
            or other.prompt_learner is not None
            or other.text_trainable
            or self.class_prompts() != other.class_prompts()
        ):
            return False
        mine, theirs = self.model.state_dict(), other.model.state_dict()
        text = [k for k in mine if not k.startswith("visual.")]
        if set(text) != {k for k in theirs if not k.startswith("visual.")} or not all(
            mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k].to(mine[k].device)) for k in text
        ):
            return False
        self._text_cache = cache.to(self.model.logit_scale.device)
        return True

    @torch.no_grad()
    def zero_shot_ages(self, pooled: torch.Tensor) -> torch.Tensor:
        """Prompts only: v (B x D) -> expected age (B) under softmax(logit_scale * cos(v, T))."""
        text = self.class_text_features()
        probs = (self.model.logit_scale.exp() * F.normalize(pooled, dim=-1) @ text.t()).softmax(dim=-1)
        return probs @ torch.tensor(self.cfg.ages, dtype=probs.dtype, device=probs.device)

    def _apply(self, fn, recurse=True):  # moving devices invalidates the text cache
        self._text_cache = None
        return super()._apply(fn, recurse)
