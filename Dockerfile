# Roost as a SageMaker container ("bring your own algorithm"): training and hosting.
# SageMaker runs `docker run <image> train` with /opt/ml laid out as documented;
# the entry point reads the hyperparameters and channels there, writes
# /opt/ml/model (packed into model.tar.gz by SageMaker) and /opt/ml/output/failure.
#
#   docker build -t roost-image-classification .
#   docker run --rm -v "$PWD/job:/opt/ml" roost-image-classification train
#   docker run --rm -p 8080:8080 -v "$PWD/model:/opt/ml/model" roost-image-classification serve
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_WAIT_POLICY=PASSIVE

WORKDIR /opt/roost
COPY pyproject.toml README.md ./
COPY src ./src
# torch first, at the exact pin: on Linux x86_64 PyPI serves the CUDA build, so the
# same image trains on GPU instances (ml.p3, ml.g5) and on CPU ones.
RUN pip install "torch==2.13.0" && pip install . && roost --version

ENTRYPOINT ["roost", "container"]
CMD ["train"]
