"""The example scripts' shared code: tasks, training loop, metrics, plots, compiled-function cache.

Imported before NumPy (as the example scripts do), it keeps NumPy's BLAS, which PyTensor's C
backend calls for the matrix products, on one thread unless ``OPENBLAS_NUM_THREADS`` says
otherwise: the NTM's products are small, and a product split over threads may sum in another
order, which made a run's float32 trajectory depend on the number of cores.
The cores go to the NTM's memory kernels instead (:mod:`ntm.accel.kernel_threads`, whose
results do not depend on the number of threads); BLAS threads waiting beside them slowed a
batch-16 step down on 2 cores. For the same reason the kernels' idle OpenMP threads spin for
less long before they sleep (``GOMP_SPINCOUNT``, read when OpenMP is loaded). Both are the
examples' settings for their own processes; the library sets neither.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("GOMP_SPINCOUNT", "100000")  # ntm.accel.kernel_threads.GOMP_SPINCOUNT
