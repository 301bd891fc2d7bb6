"""timm ViTs that expose the last block's [CLS] attention logits, the no-skip block, and loading weights into them."""
