/* A program that uses an installed dann: a small MLP, one prediction, the
 * version. Built by tests/package/CMakeLists.txt (find_package) and
 * tests/package/Makefile (pkg-config); run by .ci/package_check.sh. */
#include <dann.h>
#include <math.h>
#include <stdio.h>

int main(void)
{
    dann_model *model = NULL;
    dann_context *ctx = NULL;
    const float sample[4] = {0.5f, -1.0f, 0.25f, 2.0f};
    float probs[3] = {0};
    dann_status st = dann_model_create_mlp(4, 8, 3, 42, &model);
    if (st == DANN_OK)
        st = dann_context_create(model, &ctx);
    if (st == DANN_OK) {
        dann_batch batch = dann_batch_f32_nchw(sample, 1, 4, 1, 1);
        st = dann_predict(ctx, &batch, probs, 3, NULL, 0);
    }
    if (st != DANN_OK) {
        fprintf(stderr, "consumer: %s: %s\n", dann_status_string(st), dann_last_error());
        dann_context_destroy(ctx);
        dann_model_destroy(model);
        return 1;
    }
    float sum = probs[0] + probs[1] + probs[2];
    printf("dann %s (header %d.%d.%d, library %u): probs %.4f %.4f %.4f\n", dann_version_string(),
           DANN_VERSION_MAJOR, DANN_VERSION_MINOR, DANN_VERSION_PATCH, dann_version_number(),
           (double)probs[0], (double)probs[1], (double)probs[2]);
    dann_context_destroy(ctx);
    dann_model_destroy(model);
    if (dann_version_number() != DANN_VERSION_NUMBER || fabsf(sum - 1.0f) > 1e-4f) {
        fprintf(stderr, "consumer: version mismatch or probabilities not summing to 1\n");
        return 1;
    }
    return 0;
}
