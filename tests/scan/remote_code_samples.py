# ruff: noqa: E501  (realistic template/source text keeps its long lines)
"""Python sources for the remote-code tests, written here (no downloaded code)."""

MODELING_NEAR_MISS = '''# coding=utf-8
"""PyTorch Toy model, in the style of transformers' modeling files."""
import math
import os
import warnings
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torch.nn import CrossEntropyLoss

from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import logging

from .configuration_toy import ToyConfig

logger = logging.get_logger(__name__)

_CONFIG_FOR_DOC = "ToyConfig"

TOY_START_DOCSTRING = r"""
    This model inherits from [`PreTrainedModel`]. Check the superclass documentation for the generic methods the
    library implements for all its model (such as downloading or saving, resizing the input embeddings, pruning heads
    etc.) This model is also a PyTorch torch.nn.Module subclass. Use it as a regular PyTorch Module and refer to the
    PyTorch documentation for all matter related to general usage and behavior.
"""


class ToyRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class ToyAttention(nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.use_flash = os.environ.get("TOY_USE_FLASH_ATTN", "0") == "1"

    def forward(self, hidden_states, attention_mask=None):
        q = self.q_proj(hidden_states)
        scores = torch.matmul(q, q.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            scores = scores + attention_mask
        return F.softmax(scores, dim=-1)


class ToyPreTrainedModel(PreTrainedModel):
    config_class = ToyConfig
    base_model_prefix = "model"

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)


class ToyForCausalLM(ToyPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, labels=None):
        logits = self.lm_head(input_ids)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1))
        if self.training and loss is None:
            warnings.warn("no labels", stacklevel=2)
        self.eval()
        return CausalLMOutputWithPast(loss=loss, logits=logits)


def save_vocabulary(vocab, save_directory, filename_prefix=None):
    out = os.path.join(save_directory, (filename_prefix or "") + "vocab.json")
    with open(out, "w", encoding="utf-8") as f:
        f.write(str(vocab))
    return (out,)
'''
