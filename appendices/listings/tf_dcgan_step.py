"""One DCGAN training step in TensorFlow 2 (tf.keras), the counterpart of
spokenstyle.recipes.dcgan.gan_step with its default non-saturating loss.

A listing for readers who use TensorFlow: the book does not install TensorFlow (one framework,
one environment), so this file is parsed by the tests, not run. Layout: NHWC (TensorFlow's
default; its CPU convolutions do not support NCHW). G and D are tf.keras models, e.g. the
generator of spokenstyle.interop.keras_dcgan.build_generator(config, data_format="channels_last")
built under KERAS_BACKEND=tensorflow.
"""

import tensorflow as tf

# BCEWithLogitsLoss <-> BinaryCrossentropy(from_logits=True): the same softplus formulation
bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)
# torch.optim.Adam(lr=2e-4, betas=(0.5, 0.999)) <-> Adam(2e-4, beta_1=0.5); Keras' epsilon
# default is 1e-7, PyTorch's 1e-8: set it to match exactly
opt_g = tf.keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
opt_d = tf.keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)


@tf.function  # traced once into a graph: the counterpart of a compiled PyTorch step
def gan_step(G, D, real, latent_dim=64):
    """real: (B, R, R, 3) renders in [0, 1]. Returns the two losses."""
    x = real * 2.0 - 1.0  # to tanh's [-1, 1], as spokenstyle.models.dcgan.to_tanh_range
    z = tf.random.normal((tf.shape(x)[0], latent_dim))  # (B, latent_dim)

    # update_D: real -> 1, fake -> 0; the fakes are constants here (PyTorch's fake.detach()):
    # only D's variables are in the tape's gradient
    with tf.GradientTape() as tape:  # records the forward pass (PyTorch records it always)
        fake = G(z, training=True)  # (B, R, R, 3), BatchNorm in training mode (G.train())
        real_logits = D(x, training=True)
        fake_logits = D(tf.stop_gradient(fake), training=True)
        loss_d = bce(tf.ones_like(real_logits), real_logits) + bce(tf.zeros_like(fake_logits), fake_logits)
    grads = tape.gradient(loss_d, D.trainable_variables)  # loss_d.backward()
    opt_d.apply_gradients(zip(grads, D.trainable_variables))  # opt_d.step(); no zero_grad needed

    # update_G (non-saturating): G wants D to say "real" about its fakes, -log D(G(z))
    with tf.GradientTape() as tape:
        fake_logits = D(G(z, training=True), training=True)
        loss_g = bce(tf.ones_like(fake_logits), fake_logits)
    grads = tape.gradient(loss_g, G.trainable_variables)
    opt_g.apply_gradients(zip(grads, G.trainable_variables))
    return {"loss_D": loss_d, "loss_G": loss_g}
