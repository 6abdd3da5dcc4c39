"""Licence notices written beside the default model files."""

from __future__ import annotations

from common.models.manifest import SFACE, YUNET

MIT_TEXT = """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

NOTICES: dict[str, str] = {
    YUNET.file + ".LICENSE": (
        f"{YUNET.file} (YuNet 2023mar face detector, OpenCV Zoo)\n"
        "SPDX-License-Identifier: MIT\n"
        "Copyright (c) 2020 Shiqi Yu <shiqi.yu@gmail.com>\n\n" + MIT_TEXT
    ),
    SFACE.file + ".LICENSE": (
        f"{SFACE.file} (SFace 2021dec face recognizer, OpenCV Zoo)\n"
        "SPDX-License-Identifier: Apache-2.0\n"
        "Copyright (c) 2021 Yaoyao Zhong, Weihong Deng et al. (SFace: Sigmoid-Constrained\n"
        "Hypersphere Loss for Robust Face Recognition), converted by OpenCV Zoo.\n\n"
        'Licensed under the Apache License, Version 2.0 (the "License"); you may not use this\n'
        "file except in compliance with the License. You may obtain a copy of the License at\n"
        "    http://www.apache.org/licenses/LICENSE-2.0\n"
        "Unless required by applicable law or agreed to in writing, software distributed under\n"
        'the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF\n'
        "ANY KIND, either express or implied. See the License for the specific language\n"
        "governing permissions and limitations under the License.\n"
    ),
}
