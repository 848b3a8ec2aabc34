#!/usr/bin/env bash
# Makes the default voice clips of luot's board announcements with espeak-ng's
# Vietnamese voice: "Mời số A015 đến Quầy 3" is played as the clips
# chime, moi-so, l-a, d0, d1, d5, den, quay, d3.
# A site may replace any clip with a recorded human voice: put a WAV file of
# the same name in <data_dir>/voice/.
# Needs: espeak-ng, sox (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/clips"
say() { # say NAME TEXT
    espeak-ng -v vi -s 150 -w "$1.tmp.wav" "$2"
    # 16 kHz mono, silence trimmed at both ends: short files, no gaps.
    sox "$1.tmp.wav" -r 16000 -c 1 "$1.wav" silence 1 0.02 1% reverse silence 1 0.02 1% reverse
    rm -f "$1.tmp.wav"
}
say moi-so "Mời số"
say den "đến"
say quay "quầy"
say phong "phòng"
digits=(không một hai ba bốn năm sáu bảy tám chín)
for i in "${!digits[@]}"; do say "d$i" "${digits[$i]}"; done
say muoi "mười"
say muoi2 "mươi"
say mot2 "mốt"
say lam "lăm"
say tu "tư"
# Vietnamese names of the letters a prefix may use.
declare -A letters=([a]=a [b]=bê [c]=xê [d]=dê [e]=e [f]=ép [g]=giê [h]=hát [i]=i [j]=gi
    [k]=ca [l]=e-lờ [m]=em-mờ [n]=en-nờ [o]=o [p]=pê [q]=quy [r]=e-rờ [s]=ét [t]=tê [u]=u
    [v]=vê [w]=đáp-liu [x]=ích [y]=i-dài [z]=dét)
for l in {a..z}; do say "l-$l" "${letters[$l]}"; done
# The chime: two soft tones.
sox -n -r 16000 -c 1 chime.wav synth 0.35 sine 880 fade 0 0.35 0.3 : synth 0.5 sine 660 fade 0 0.5 0.45 vol 0.6
echo "$(find . -name '*.wav' | wc -l) clips"
