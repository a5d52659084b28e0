"""The paper's method as data: the distillation config, the losses, the schedules (algorithms), the
loss of one batch under one stage (objective), and one configuration resolved against a teacher (plan)."""
