"""The bundled DeepSeek-V3-style trainer: model (MLA, MoE, MTP), mixture loader, loop, checkpoints."""
