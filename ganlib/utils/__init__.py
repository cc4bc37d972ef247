"""Plumbing the core stands on: the device and torchrun (`device`), BatchNorm across processes
(`distributed`), files written atomically (`files`), numbered and locked run folders (`runs`), a network
in eval mode for a while (`nets`)."""
