"""Looking inside the data and a trained generator: the OASIS layout and slices (`slices`), latent paths,
directions and neighbours (`latent`), and the notebook's sliders (`widgets`)."""
