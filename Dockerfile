# Bring-your-own-container image for Amazon SageMaker real-time endpoints and batch
# transform, serving an skobject2vec model with SageMaker's Object2Vec protocol
# (GET /ping, POST /invocations with application/json or application/jsonlines).
#
# SageMaker's container contract, and how this image meets it:
#   * SageMaker starts the container as `docker run <image> serve`: the entrypoint
#     below accepts that argument and runs `skobject2vec serve`.
#   * The model artifact (model.tar.gz holding config.json and model.safetensors,
#     i.e. the folder written by `estimator.save(dir)`, tarred with
#     `tar -czf model.tar.gz -C dir .`) is unpacked into /opt/ml/model, the
#     default of --model-dir (SM_MODEL_DIR overrides it). Nothing is unpickled.
#   * The server listens on port 8080 (SAGEMAKER_BIND_TO_PORT overrides it) on all
#     interfaces of the container, as SageMaker's network requires.
#   * Request bodies up to 6 MB (SageMaker's limit) are accepted; larger ones get 413.
#   * INFERENCE_PREFERRED_MODE=classification|embedding is honoured (both modes work).
#   * SAGEMAKER_MODEL_SERVER_WORKERS sets the number of server processes (default 1;
#     each loads its own copy of the model).
#
# Build and try it locally:
#   docker build -t skobject2vec-serve .
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/my-model:/opt/ml/model:ro" skobject2vec-serve serve
#   curl -s 127.0.0.1:8080/ping
#   curl -s 127.0.0.1:8080/invocations -H 'content-type: application/json' \
#        -d '{"instances": [{"in0": [1, 2, 3], "in1": [4, 5]}]}'
# Then push it to ECR and create a SageMaker Model with this image and the
# model.tar.gz on S3 (sagemaker.model.Model(image_uri=..., model_data=...)).
#
# The CPU build of PyTorch keeps the image small; for GPU instances, start from an
# image with CUDA PyTorch instead (e.g. pytorch/pytorch:*-cuda*-runtime) and drop
# the --index-url line.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.1"

WORKDIR /opt/skobject2vec
COPY pyproject.toml README.md ./
COPY skobject2vec ./skobject2vec
RUN pip install ".[serve]"

EXPOSE 8080
ENTRYPOINT ["/bin/sh", "-c", "if [ \"$1\" = serve ]; then shift; fi; exec skobject2vec serve --host 0.0.0.0 --workers \"${SAGEMAKER_MODEL_SERVER_WORKERS:-1}\" \"$@\"", "sagemaker-serve"]
CMD ["serve"]
