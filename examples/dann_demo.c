/*
 * dann_demo - the two-moons toy of Ganin et al. (JMLR 2016, section 5.1),
 * through dann's public C API only.
 *
 * Source domain: two interleaving half circles with Gaussian noise, labelled
 * (upper moon = class 0, lower moon = class 1). Target domain: the same
 * distribution rotated by 35 degrees about its centre, unlabelled. The network
 * is the shallow DANN: 2 inputs -> 15 sigmoid units -> 2 classes, with a
 * logistic domain regressor on the hidden layer behind the gradient reversal
 * layer.
 *
 * For each seed the demo trains twice from the same initial weights on the
 * same batches: source only (no target batch) and DANN (source + target
 * batch, lambda rising along the paper's schedule), then reports the accuracy
 * on 1000 fresh target points. Runs vary a lot with the seed, so it reports
 * ten seeds and their mean, all at the last step. dann's step is the deep
 * recipe's (the domain head trains with weight 1, lambda acts only inside the
 * GRL), not the shallow algorithm's (lambda 6 on the whole domain term, lr
 * 0.05), so lambda follows the deep schedule scaled to 6, and the learning
 * rate, 0.2, was picked by a quick sweep over 0.05 to 0.3.
 *
 * Exit status: 0 on success, 1 if a dann call fails.
 */
#include <dann.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PI 3.14159265358979323846

enum {
    N_DOMAIN = 300,  /* points per training domain, half per moon */
    N_TEST = 1000,   /* fresh target points for the accuracy      */
    BATCH = 32,      /* source and target samples per step        */
    STEPS = 3000,
    HIDDEN = 15,
    N_SEEDS = 10
};

static const double NOISE = 0.05;
static const double ROTATION_DEG = 35.0;
static const float LEARNING_RATE = 0.2f;
static const float LAMBDA_MAX = 6.0f; /* lambda_p = LAMBDA_MAX * (2/(1+exp(-10p)) - 1) */

/* ------------------------------------------------------------------------- */
/* A small seeded generator: splitmix64, uniform doubles, Box-Muller normals. */

typedef struct rng {
    uint64_t state;
    int has_spare;
    double spare;
} rng;

static rng rng_make(uint64_t seed)
{
    rng r;
    r.state = seed;
    r.has_spare = 0;
    r.spare = 0.0;
    return r;
}

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_uniform(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(rng *r, double sigma)
{
    double u1, u2, radius;
    if (r->has_spare) {
        r->has_spare = 0;
        return sigma * r->spare;
    }
    do {
        u1 = rng_uniform(r);
    } while (u1 <= 0.0);
    u2 = rng_uniform(r);
    radius = sqrt(-2.0 * log(u1));
    r->spare = radius * sin(2.0 * PI * u2);
    r->has_spare = 1;
    return sigma * radius * cos(2.0 * PI * u2);
}

static size_t rng_index(rng *r, size_t n)
{
    return (size_t)(rng_uniform(r) * (double)n);
}

/* ------------------------------------------------------------------------- */
/* The data: n points, half per moon, centred on the origin and rotated.     */

static void make_moons(rng *r, size_t n, double rotation_deg, float *xy, int32_t *labels)
{
    const double angle = rotation_deg * PI / 180.0;
    const double c = cos(angle), s = sin(angle);
    size_t i;
    for (i = 0; i < n; ++i) {
        const int label = i < n / 2 ? 0 : 1;
        const double t = PI * rng_uniform(r);
        double x, y;
        if (label == 0) {
            x = cos(t);
            y = sin(t);
        } else {
            x = 1.0 - cos(t);
            y = 0.5 - sin(t);
        }
        /* Noise, then centre the pair of moons (their centre is (0.5, 0.25)). */
        x += rng_normal(r, NOISE) - 0.5;
        y += rng_normal(r, NOISE) - 0.25;
        xy[2 * i] = (float)(c * x - s * y);
        xy[2 * i + 1] = (float)(s * x + c * y);
        labels[i] = label;
    }
}

/* ------------------------------------------------------------------------- */

typedef struct run_result {
    double target_accuracy;
    double source_accuracy;
    float final_domain_loss; /* mean over the last 100 steps; 0 for source only */
} run_result;

static int failed(const char *call, dann_status st)
{
    fprintf(stderr, "dann_demo: %s failed: %s: %s\n", call, dann_status_string(st),
            dann_last_error());
    return 1;
}

static int accuracy(dann_context *ctx, const float *xy, const int32_t *labels, size_t n,
                    double *out)
{
    float *probs = (float *)malloc(2 * n * sizeof *probs);
    dann_batch batch = dann_batch_f32_nchw(xy, n, 2, 1, 1);
    dann_status st;
    size_t i, correct = 0;
    if (probs == NULL) {
        fprintf(stderr, "dann_demo: out of memory\n");
        return 1;
    }
    st = dann_predict(ctx, &batch, probs, 2 * n, NULL, 0);
    if (st != DANN_OK) {
        free(probs);
        return failed("dann_predict", st);
    }
    for (i = 0; i < n; ++i) {
        const int predicted = probs[2 * i + 1] > probs[2 * i] ? 1 : 0;
        correct += predicted == labels[i];
    }
    free(probs);
    *out = (double)correct / (double)n;
    return 0;
}

/* Trains one model; adapt = 0 gives the source-only baseline. */
static int train(uint64_t seed, int adapt, const float *src_xy, const int32_t *src_labels,
                 const float *tgt_xy, const float *test_xy, const int32_t *test_labels,
                 run_result *result)
{
    dann_model *model = NULL;
    dann_trainer *trainer = NULL;
    dann_context *ctx = NULL;
    dann_train_params params = dann_train_params_default();
    rng sampler = rng_make(seed * 7919u + 17u);
    float src_batch[2 * BATCH], tgt_batch[2 * BATCH];
    int32_t batch_labels[BATCH];
    double domain_loss_sum = 0.0;
    dann_status st;
    int step, rc = 1;

    st = dann_model_create_mlp(2, HIDDEN, 2, seed, &model);
    if (st != DANN_OK)
        return failed("dann_model_create_mlp", st);
    /* A network this small spends more time waking threads than computing. */
    st = dann_model_set_threads(model, 1);
    if (st != DANN_OK) {
        failed("dann_model_set_threads", st);
        goto done;
    }
    st = dann_trainer_create(model, &params, &trainer);
    if (st != DANN_OK) {
        failed("dann_trainer_create", st);
        goto done;
    }

    for (step = 0; step < STEPS; ++step) {
        const double p = (double)step / STEPS;
        const float lambda = (float)(LAMBDA_MAX * (2.0 / (1.0 + exp(-10.0 * p)) - 1.0));
        dann_batch src = dann_batch_f32_nchw(src_batch, BATCH, 2, 1, 1);
        dann_batch tgt = dann_batch_f32_nchw(tgt_batch, BATCH, 2, 1, 1);
        dann_step_result r;
        int b;
        /* Both runs draw the same source indices; the target draws come after. */
        for (b = 0; b < BATCH; ++b) {
            const size_t i = rng_index(&sampler, N_DOMAIN);
            src_batch[2 * b] = src_xy[2 * i];
            src_batch[2 * b + 1] = src_xy[2 * i + 1];
            batch_labels[b] = src_labels[i];
        }
        for (b = 0; b < BATCH; ++b) {
            const size_t j = rng_index(&sampler, N_DOMAIN);
            tgt_batch[2 * b] = tgt_xy[2 * j];
            tgt_batch[2 * b + 1] = tgt_xy[2 * j + 1];
        }
        st = dann_trainer_step(trainer, &src, batch_labels, adapt ? &tgt : NULL, lambda,
                               LEARNING_RATE, &r);
        if (st != DANN_OK) {
            failed("dann_trainer_step", st);
            goto done;
        }
        if (step >= STEPS - 100)
            domain_loss_sum += r.domain_loss;
    }
    result->final_domain_loss = (float)(domain_loss_sum / 100.0);

    st = dann_context_create(model, &ctx);
    if (st != DANN_OK) {
        failed("dann_context_create", st);
        goto done;
    }
    if (accuracy(ctx, test_xy, test_labels, N_TEST, &result->target_accuracy) != 0 ||
        accuracy(ctx, src_xy, src_labels, N_DOMAIN, &result->source_accuracy) != 0)
        goto done;
    rc = 0;

done:
    dann_context_destroy(ctx);
    dann_trainer_destroy(trainer);
    dann_model_destroy(model);
    return rc;
}

int main(void)
{
    static float src_xy[2 * N_DOMAIN], tgt_xy[2 * N_DOMAIN], test_xy[2 * N_TEST];
    static int32_t src_labels[N_DOMAIN], tgt_labels[N_DOMAIN], test_labels[N_TEST];
    double sum_source_only = 0.0, sum_dann = 0.0;
    uint64_t seed;

    printf("dann %s - two moons, target rotated by %.0f degrees\n", dann_version_string(),
           ROTATION_DEG);
    printf("MLP 2-%d-2 (sigmoid), %d steps of %d source + %d target, lr %.2f, "
           "lambda %.0f*(2/(1+exp(-10p))-1)\n\n",
           HIDDEN, STEPS, BATCH, BATCH, LEARNING_RATE, LAMBDA_MAX);
    printf("%-6s %-21s %-21s %s\n", "seed", "source only", "DANN", "DANN domain loss");
    printf("%-6s %-21s %-21s %s\n", "", "target acc (source)", "target acc (source)",
           "(last 100 steps)");

    for (seed = 1; seed <= N_SEEDS; ++seed) {
        rng data = rng_make(seed);
        run_result source_only, adapted;
        make_moons(&data, N_DOMAIN, 0.0, src_xy, src_labels);
        make_moons(&data, N_DOMAIN, ROTATION_DEG, tgt_xy, tgt_labels); /* labels unused */
        make_moons(&data, N_TEST, ROTATION_DEG, test_xy, test_labels);

        if (train(seed, 0, src_xy, src_labels, tgt_xy, test_xy, test_labels, &source_only) != 0 ||
            train(seed, 1, src_xy, src_labels, tgt_xy, test_xy, test_labels, &adapted) != 0)
            return 1;
        printf("%-6u %.3f (%.3f)         %.3f (%.3f)         %.3f\n", (unsigned)seed,
               source_only.target_accuracy, source_only.source_accuracy, adapted.target_accuracy,
               adapted.source_accuracy, adapted.final_domain_loss);
        sum_source_only += source_only.target_accuracy;
        sum_dann += adapted.target_accuracy;
    }
    printf("%-6s %.3f                 %.3f                 (ln 2 = %.3f)\n", "mean",
           sum_source_only / N_SEEDS, sum_dann / N_SEEDS, log(2.0));
    return 0;
}
