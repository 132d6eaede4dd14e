"""Auxiliary networks: the StyleGAN2 discriminator, the image encoder, and Voynov & Babenko's reconstructor."""
