"""The GAN family: the adversarial keras.Model (model), its losses, learning-rate schedules and
its builder.
"""
