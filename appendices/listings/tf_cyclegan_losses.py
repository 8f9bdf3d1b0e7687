"""CycleGAN's losses in TensorFlow 2, the counterparts of spokenstyle.losses (lsgan_d_loss,
lsgan_g_loss, cycle_loss, identity_loss) and of the generator objective of
spokenstyle.recipes.cyclegan.cycle_step (Zhu et al. 2017).

A listing: the book does not install TensorFlow (one framework, one environment), so this file
is parsed by the tests, not run. Scores are D's raw outputs (PatchGAN maps, no sigmoid).
"""

import tensorflow as tf

LAMBDA_CYCLE = 10.0  # lambda of the paper's eq. 3
LAMBDA_IDENTITY = 0.5  # the identity term is weighted 0.5 * lambda (paper, section 5.2)


def lsgan_d_loss(real_scores, fake_scores):
    """1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2  (Mao et al. 2017)."""
    return 0.5 * tf.reduce_mean(tf.square(real_scores - 1.0)) + 0.5 * tf.reduce_mean(tf.square(fake_scores))


def lsgan_g_loss(fake_scores):
    """1/2 E (D(G(z)) - 1)^2: G pushes its samples' scores to the real target 1."""
    return 0.5 * tf.reduce_mean(tf.square(fake_scores - 1.0))


def cycle_loss(reconstructed, original):
    """E |F(G(x)) - x|, the mean over every pixel and channel (eq. 2)."""
    return tf.reduce_mean(tf.abs(reconstructed - original))


def identity_loss(mapped, original):
    """E |G(y) - y| for y already in G's output domain."""
    return tf.reduce_mean(tf.abs(mapped - original))


def generator_objective(G_AB, G_BA, D_A, D_B, real_a, real_b):
    """update_G's loss: adversarial (both directions) + lambda * cycle + 0.5 * lambda * identity."""
    fake_b = G_AB(real_a, training=True)  # A -> B
    fake_a = G_BA(real_b, training=True)  # B -> A
    cycle = cycle_loss(G_BA(fake_b, training=True), real_a) + cycle_loss(G_AB(fake_a, training=True), real_b)
    identity = identity_loss(G_AB(real_b, training=True), real_b) + identity_loss(G_BA(real_a, training=True), real_a)
    # 2 x the 1/2-scaled LSGAN term = the reference's MSE(D(G(x)), 1), as in the PyTorch recipe
    adversarial = 2.0 * (lsgan_g_loss(D_B(fake_b, training=True)) + lsgan_g_loss(D_A(fake_a, training=True)))
    return adversarial + LAMBDA_CYCLE * cycle + LAMBDA_CYCLE * LAMBDA_IDENTITY * identity, (fake_a, fake_b)


def discriminator_objective(D_A, D_B, real_a, real_b, fake_a, fake_b):
    """update_D's loss on detached fakes (tf.stop_gradient is PyTorch's .detach())."""
    return (lsgan_d_loss(D_A(real_a, training=True), D_A(tf.stop_gradient(fake_a), training=True))
            + lsgan_d_loss(D_B(real_b, training=True), D_B(tf.stop_gradient(fake_b), training=True)))
