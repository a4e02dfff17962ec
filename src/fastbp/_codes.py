"""Integer codes shared by the plan builder and the kernels.

The network compiles to arrays of these codes (the *plan*); kernels branch on them once per
layer, never per element, and never on strings. Layer kinds are not listed here: each kernel
module defines its own ``KIND``.
"""

# Columns of the int64 plan table, one row per layer. Workspace offsets are per sample:
# with a batch of m rows, a region at offset o of width w occupies ws[m*o : m*(o + w)].
L_KIND = 0  # the layer's kernel module KIND
L_IN_SIZE = 1  # input elements per sample
L_OUT_SIZE = 2  # output elements per sample
L_PARAM_OFFSET = 3  # into params / grads
L_PARAM_SIZE = 4
L_BUFFER_OFFSET = 5  # into buffers (non-trainable state)
L_BUFFER_SIZE = 6
L_OUT_OFFSET = 7  # layer output in the workspace (per sample)
L_DELTA_OFFSET = 8  # dLoss/d(layer output), same shape as the output
L_SCRATCH_OFFSET = 9  # per-sample scratch in the workspace
L_SCRATCH_SIZE = 10
L_BATCH_OFFSET = 11  # scratch whose size does not depend on the batch: its distance from
#                      the end of the workspace
L_BATCH_SIZE = 12
L_INT_OFFSET = 13  # the layer's integer settings, in the plan's ints
L_INT_SIZE = 14
L_FLOAT_OFFSET = 15  # the layer's float settings, in the plan's floats
L_FLOAT_SIZE = 16
L_IS_VIEW = 17  # 1: the output shares the input's region (Flatten); no kernel runs
L_FORWARD_KERNEL = 18  # the address of the kind's compiled forward (process-local, filled by
L_BACKWARD_KERNEL = 19  # fastbp._dispatch when the network first runs), and of its backward
# Wiring, so that blocks (fastbp.Residual, fastbp.Concat) fork and join inside the one walk:
L_INPUT = 20  # the row whose output is the input: -1 the network's input X; -2 (a block's
#               join, which reads several) the whole per-sample workspace
L_D_INPUT_OFFSET = 21  # where backward writes dLoss/d(input): the input row's delta region,
#                        or a region of its own when another reader's gradient is added to
#                        it (see L_D_INPUT_ADD); for a join, the workspace's per-sample width
L_D_INPUT_ADD = 22  # -1, or the delta region the walker adds this row's d(input) region to
# Batch statistics in a split step (kernels/synced.py): a layer whose kernels need sums over
# the whole batch stops at sync points, where every part's first L_SYNC_WIDTH values of its
# per-batch scratch become the whole batch's (the parts' values averaged by their rows).
L_SYNC_WIDTH = 23
L_SYNC_FORWARD = 24  # sync points in the layer's forward pass (0: none)
L_SYNC_BACKWARD = 25  # ... and in its backward pass
PLAN_WIDTH = 26
INPUT_X = -1  # L_INPUT values
INPUT_WORKSPACE = -2

# Bits of the ``flags`` every layer kernel receives.
F_TRAINING = 1  # training mode (dropout on, batch statistics): PyTorch's module.train()
F_UPDATE_BUFFERS = 2  # write running statistics into buffers (train_step, not loss_and_grad)
F_NEED_D_INPUT = 4  # backward must write dLoss/d(input) (every layer but the first)
F_STANDALONE = 8  # a step called from Python: zero the results and validate the batch first
F_INFER = 16  # run_dataset: forward in chunks (outputs, loss, accuracy), no training
F_VALIDATE = 32  # run_dataset: only check the data as train_step would
F_PART = 64  # a gradient over one part of a split step (kernels pick smaller chunks)
F_EXACT = 128  # a standalone step retried by Python, which checks its update (no risk test)
# Bits 8-14: the pieces a product of at least PIECES_MIN_WORK multiply-adds (or of operands
# of PIECES_MIN_BYTES, or a single row's through ROW_PIECES_MIN_BYTES) is cut into
# (kernels/linalg.py's worth_pieces; 0 or 1: one BLAS call). Each piece is one
# single-threaded BLAS call on a block of the output; the blocks depend only on the count, so
# running them at once (F_PIECES_AT_ONCE) or one after another gives the same bits.
PIECES_SHIFT = 8
PIECES_MASK = 127
F_PIECES_AT_ONCE = 1 << 15  # the pieces run at once on numba's threads
# A layer with sync points, in a part of a split step: its kernel runs once per phase, the
# phase (0 up to its sync points) in the bits from SYNC_PHASE_SHIFT (kernels/synced.py).
# (Bit 16 up also carries a part's number to its runner, which clears it before any layer.)
F_SYNCED = 1 << 16
SYNC_PHASE_SHIFT = 17
# A single row served (Inference's one-row path, never training): a kind may take another
# forward for it, compiled on first use (a recurrent layer's single-sequence products by
# hand: kernels/recurrent.py). The bit lies inside the part number and round fields of a
# split step's flags (bits 16 up, kernels/step.py and synced.py), which only training's
# split steps set and read; inference never reaches them.
F_ONE_ROW = 1 << 40

# A step's part info (kernels/bundles.py's Parts.info).
PART_STEP = 0  # the address of step.train_step, which run_part runs on a part (0: synced)
PART_MIN_ROWS = 1  # batches with fewer rows run whole, on one thread
PART_PARALLEL = 2  # 1: the parts run at once on numba's threads; 0: one after another
PART_MAX_ROWS = 3  # batches with more rows run whole (their products in pieces serve them better)
PART_AT_ONCE = 4  # the address of the kernel that runs the parts on threads
PART_RUNNER = 5  # the address of the kernel that runs one part
PART_WS_SIZE = 6  # the length of a part's workspace (after its gradient in its row of parts)
PART_NEXT = 7  # the next part a thread may claim (parts_at_once)
PART_SPLIT = 8  # the address of the kernel that splits a step into parts (split_gradient)
N_PART_INFO = 9

# Activations computed inline in the layer kernels (fastbp.activations). Every other
# activation is a compiled row kernel called by address: the setting is then its address,
# which is larger than any of these codes.
IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
SIGMOID = 3
TANH = 4
LAST_INLINE = TANH
LEAKY_SLOPE = 0.01
# The two calls of a row kernel (kernels/activations.py): out = f(z), and d *= f'(z).
ACT_VALUE = 0
ACT_DERIVATIVE = 1

# Losses (fastbp.losses).
CROSS_ENTROPY = 0
BINARY_CROSS_ENTROPY = 1
MSE = 2
HUBER = 3
L1 = 4
NO_LOSS = -1
# A class label that is not scored (padding, a position without a target), as torch's
# CrossEntropyLoss(ignore_index=-100) default.
IGNORE_INDEX = -100
# The loss's settings, after every layer's float settings at the end of the plan's floats.
LOSS_HUBER_DELTA = 0
LOSS_LABEL_SMOOTHING = 1
N_LOSS_SETTINGS = 2
# Just before the loss's settings in the plan's floats: max |params| as far as the kernels
# know (inf: unknown, after a write from Python), for the standalone step's overflow test.
PARAM_BOUND_FROM_END = N_LOSS_SETTINGS + 1

# Optimizers (AdamW is Adam with the decoupled flag; momentum/Nesterov are SGD flags).
NO_UPDATE = -1
SGD = 0
ADAGRAD = 1
RMSPROP = 2
ADAM = 3

# Slots of the float64 hyperparameter vector handed to the update kernel.
H_LR = 0
H_WEIGHT_DECAY = 1
H_MOMENTUM = 2
H_DAMPENING = 3
H_NESTEROV = 4
H_BETA1 = 5
H_BETA2 = 6
H_ALPHA = 7
H_EPS = 8
H_LR_DECAY = 9
H_AMSGRAD = 10
H_CENTERED = 11
H_DECOUPLED = 12
H_MAX_NORM = 13  # gradient clipping by global L2 norm; <= 0 disables it
H_KIND = 14  # the optimizer (SGD...), or NO_UPDATE for a gradient alone
# How far an update can move values, from the hyperparameters (Optimizer.update_bounds):
# |new value| <= H_BOUND_G * G + H_BOUND_P * S + H_BOUND_C, for S = max |params| and |state|
# and G = max |grad| + |weight_decay| * S.
H_BOUND_G = 15
H_BOUND_P = 16
H_BOUND_C = 17
H_MAX_PARAM = 18  # max |params| after the optimizer's last update (inf: unknown)
H_MAX_STATE = 19  # max |state| after its last update (inf: unknown)
N_HYPER = 20

# Slots of the int64 counters vector.
C_STEP = 0  # optimizer steps taken (torch's state["step"])
N_COUNTERS = 1

# Slots of the float64 result vector every step/epoch kernel writes.
R_LOSS = 0  # weighted loss sum
R_WEIGHT = 1  # sum of sample weights (the loss is R_LOSS / R_WEIGHT)
R_CORRECT = 2  # correctly classified outputs (classification losses)
R_COUNT = 3  # outputs counted for accuracy
R_GRAD_NORM = 4  # global L2 norm of the gradient before clipping (0 when not clipping)
R_ERROR = 5  # 0, or one of the E_* codes below
R_ERROR_INDEX = 6  # the first offending row
R_BATCHES = 7  # batches completed (an epoch stops early on a non-finite loss)
N_RESULTS = 8

# Input errors found by the kernels' own checks, before any state is touched (0: none).
E_X_NOT_FINITE = 1
E_Y_NOT_FINITE = 2
E_LABEL_RANGE = 3
E_TARGET_RANGE = 4
E_WEIGHT = 5
E_NON_FINITE_LOSS = 6
E_NON_FINITE_GRAD = 7  # a finite loss, a gradient that is not: nothing updated
E_RISKY_UPDATE = 8  # the update might overflow the dtype: Python retries the step exactly
E_NON_FINITE_UPDATE = 9  # the update overflowed: everything was put back

# Below this many multiply-adds a hand loop beats the BLAS call overhead.
BLAS_MIN_WORK = 2048

# A sample-major convolution builds im2col columns for this many bytes of samples at a time
# (kernels/conv.py), so that its product reads them from cache, not memory: 1 MB in a part
# of a split step (one thread, one core's cache), 4 MB otherwise (a product big enough is
# cut into pieces on the threads, which need more columns to pay for their hand-offs; 1 MB
# there slows the unsplit step and inference).
CONV_CHUNK_BYTES = 1 << 20
CONV_CHUNK_BYTES_THREADS = 4 << 20

# A product of at least this many multiply-adds is worth a second core: it is cut into
# pieces (PIECES_SHIFT) when the flags ask for them (scripts/perf_checks.py --threads
# measures both sides of it).
PIECES_MIN_WORK = 4_000_000
# ... or whose operands hold at least this many bytes, whatever its multiply-adds: a product
# of a few rows by a weight matrix of twice a core's L2 cache (1 MB a core here) or more is
# bound by reading the weights, and two cores, each reading half into its own cache, take
# a third of one's time (a single row through 784x1024 float32 weights: 141 us on one, 45
# on two). Smaller thresholds lost on a busy machine, where the pieces run in turn.
PIECES_MIN_BYTES = 2 << 20
# ... or, for a single row (a matrix-vector product), whose matrix holds at least this many
# bytes, half a core's L2 cache here: a row through 784x256 float32 weights (0.8 MB) took
# 9.4 us on one core and 6.0 on two at once (each half stays in its core's cache from call
# to call), 784x128 (0.4 MB) 4.1 and 4.0; run in turn on a busy machine, the two pieces
# cost 0-1.3 us more than one call (scripts/ab_steps.py measures a single row's forward).
ROW_PIECES_MIN_BYTES = 1 << 19
