"""The generative judge: prompt, parsing, backends and the batching front that feeds them."""
