"""Integer codes shared by the plan builder and the kernels.

The network compiles to arrays of these codes (the *plan*); kernels branch on them once per
layer, never per element, and never on strings.
"""

# Layer kinds. A new kind gets a code here and a forward/backward pair in its own module.
DENSE = 0
DROPOUT = 1

# Columns of the int64 plan, one row per layer. Offsets into the workspace are per sample:
# with a batch of B rows, a region at offset o of width w occupies ws[B*o : B*(o + w)].
P_KIND = 0
P_N_IN = 1
P_N_OUT = 2
P_ACTIVATION = 3
P_W_OFFSET = 4  # into params / grads
P_B_OFFSET = 5
P_OUT_OFFSET = 6  # layer output, per-sample offset into the workspace
P_DELTA_OFFSET = 7  # dLoss/d(layer output), same shape as the output
P_MASK_OFFSET = 8  # dropout's scaled keep-mask
PLAN_WIDTH = 9

# Columns of the float64 plan.
PF_DROP_P = 0
PLAN_F_WIDTH = 1

# Activations.
IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
SIGMOID = 3
TANH = 4
LEAKY_SLOPE = 0.01

# Losses.
CROSS_ENTROPY = 0
BINARY_CROSS_ENTROPY = 1
MSE = 2
NO_LOSS = -1

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
N_HYPER = 14

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

# Below this many multiply-adds a hand loop beats the BLAS call overhead.
BLAS_MIN_WORK = 2048
