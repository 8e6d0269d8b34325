"""Triton's decoupled "repeat" example, written the way its documentation writes it: each element of IN is
sent back as its own response (OUT, with its index IDX), from a thread the model starts, after an optional
per-element DELAY in milliseconds; then the final flag."""

import json
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = model_config = json.loads(args["model_config"])
        using_decoupled = pb_utils.using_decoupled_model_transaction_policy(model_config)
        if not using_decoupled:
            raise pb_utils.TritonModelException(
                "the model `{}` can support only decoupled transaction policy".format(args["model_name"])
            )
        out_config = pb_utils.get_output_config_by_name(model_config, "OUT")
        self.out_dtype = pb_utils.triton_string_to_numpy(out_config["data_type"])
        idx_config = pb_utils.get_output_config_by_name(model_config, "IDX")
        self.idx_dtype = pb_utils.triton_string_to_numpy(idx_config["data_type"])
        self.inflight_thread_count = 0
        self.inflight_thread_count_lck = threading.Lock()

    def execute(self, requests):
        for request in requests:
            self.process_request(request)
        return None

    def process_request(self, request):
        in_input = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
        delay_tensor = pb_utils.get_input_tensor_by_name(request, "DELAY")
        delays = delay_tensor.as_numpy() if delay_tensor is not None else np.zeros(in_input.shape, np.uint32)
        if in_input.shape != delays.shape:
            raise pb_utils.TritonModelException(
                f"expected IN and DELAY shape to match, got {list(in_input.shape)} and {list(delays.shape)}."
            )
        thread = threading.Thread(
            target=self.response_thread,
            args=(request.get_response_sender(), np.array(in_input), np.array(delays)),
        )
        thread.daemon = True
        with self.inflight_thread_count_lck:
            self.inflight_thread_count += 1
        thread.start()

    def response_thread(self, response_sender, in_input, delays):
        for idx in range(in_input.shape[0]):
            time.sleep(delays[idx] / 1000)
            out_output = pb_utils.Tensor("OUT", np.array([in_input[idx]], self.out_dtype))
            idx_output = pb_utils.Tensor("IDX", np.array([idx], self.idx_dtype))
            response = pb_utils.InferenceResponse(output_tensors=[out_output, idx_output])
            response_sender.send(response)
        response_sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        with self.inflight_thread_count_lck:
            self.inflight_thread_count -= 1

    def finalize(self):
        inflight_threads = True
        cycles = 0
        while inflight_threads and cycles < 500:
            with self.inflight_thread_count_lck:
                inflight_threads = self.inflight_thread_count != 0
            if inflight_threads:
                time.sleep(0.01)
                cycles += 1
