"""Training tasks for the harness (`latentjax.train`) that are not direction methods: the shapes GAN, the encoder."""
